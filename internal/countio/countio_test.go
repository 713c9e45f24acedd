package countio

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestCounts(t *testing.T) {
	var buf bytes.Buffer
	w := &Writer{W: &buf}
	r := &Reader{R: strings.NewReader("hello, world")}
	if _, err := io.CopyN(w, r, 5); err != nil {
		t.Fatal(err)
	}
	if w.N != 5 || r.N < 5 || buf.String() != "hello" {
		t.Fatalf("wrote %d (%q), read %d; want 5, hello, at least 5", w.N, buf.String(), r.N)
	}
	if _, err := io.Copy(w, r); err != nil {
		t.Fatal(err)
	}
	if w.N != 12 || r.N != 12 {
		t.Fatalf("after the rest: wrote %d, read %d; want 12 each", w.N, r.N)
	}
}
