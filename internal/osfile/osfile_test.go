package osfile

import (
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// CreateTemp makes a new file of its own (0600) under the prefix each
// call, readable and writable; Open reads a file back and reports a
// missing one as fs.ErrNotExist, as os.Open does.
func TestCreateTempAndOpen(t *testing.T) {
	dir := t.TempDir()
	a, err := CreateTemp(dir, "put-")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := CreateTemp(dir, "put-")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Name() == b.Name() || !strings.HasPrefix(filepath.Base(a.Name()), "put-") || filepath.Dir(a.Name()) != dir {
		t.Fatalf("temp names %q and %q, want two distinct put-* in %s", a.Name(), b.Name(), dir)
	}
	if fi, err := a.Stat(); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("temp file mode %v (%v), want 0600", fi.Mode(), err)
	}
	if _, err := a.WriteString("hello"); err != nil {
		t.Fatal(err)
	}
	f, err := Open(a.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, err := io.ReadAll(f); err != nil || string(got) != "hello" {
		t.Fatalf("Open read %q (%v), want hello", got, err)
	}
	if _, err := Open(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of a missing file: %v, want fs.ErrNotExist", err)
	}
}
