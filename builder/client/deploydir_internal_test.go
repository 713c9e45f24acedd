package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/atoll-hosting/atoll"
)

// TestCreateRequest: the create request encoded from the file list decodes
// to the manifest, whatever the paths hold.
func TestCreateRequest(t *testing.T) {
	d := dirFiles{list: []localFile{
		{path: "/a.html", hash: "aa"},
		{path: "/quote\"back\\slash.html", hash: "bb"},
		{path: "/\u00e9t\u00e9/<tag>&.html", hash: "cc"},
		{path: "/ctl\x01\ttab.html", hash: "dd"},
	}}
	var got atoll.CreateDeployRequest
	if err := json.Unmarshal(d.createRequest(), &got); err != nil {
		t.Fatalf("decode %s: %v", d.createRequest(), err)
	}
	if !maps.Equal(got.Files, d.manifest()) {
		t.Errorf("decoded %v, want %v", got.Files, d.manifest())
	}
	if empty := (dirFiles{}).createRequest(); string(empty) != `{"files":{}}` {
		t.Errorf("empty list: %s", empty)
	}
}

// TestFillHashKeepsWithinBudget: small files keep their bytes until the
// budget is spent; a file over keepFileMax or past the budget is hashed
// from disk and keeps nothing, and a kept file reads back as hashed.
func TestFillHashKeepsWithinBudget(t *testing.T) {
	dir := t.TempDir()
	var files []localFile
	for i, size := range []int{10, 20, 30, 5, keepFileMax + 1} {
		p := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(p, bytes.Repeat([]byte{'a' + byte(i)}, size), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, localFile{disk: p, size: int64(size)})
	}
	var keep atomic.Int64
	keep.Store(40)
	for i := range files {
		if err := files[i].fillHash(context.Background(), openHashCache("", dir), &progress{}, &keep); err != nil {
			t.Fatal(err)
		}
	}
	for i, wantKept := range []bool{true, true, false, true, false} {
		f := &files[i]
		if kept := f.data != nil; kept != wantKept {
			t.Errorf("file %d (%d bytes): kept %v, want %v", i, f.size, kept, wantKept)
		}
		r, err := f.open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r)
		r.Close()
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != f.hash || int64(len(b)) != f.size {
			t.Errorf("file %d reads back %d bytes not matching its hash %s", i, len(b), f.hash)
		}
	}
	if left := keep.Load(); left != 5 {
		t.Errorf("budget left %d, want 5 (40 - 10 - 20 - 5)", left)
	}
}
