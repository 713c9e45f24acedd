package blobstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// newTestStore opens a store in a fresh temp folder.
func newTestStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	return openTestStore(t, dir), dir
}

// openTestStore opens (or reopens) the store in dir.
func openTestStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := New(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	if err != nil {
		t.Fatalf("New(%s): %v", dir, err)
	}
	return s
}

// textBlob returns n bytes of deterministic, compressible HTML-like text;
// seed makes different blobs.
func textBlob(n int, seed uint64) []byte {
	words := []string{"atoll", "static", "site", "<div class=\"card\">", "</div>", "hosting", "edge", "lorem", "ipsum", "\n", "<p>", "</p>", "deploy", "blob"}
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	fmt.Fprintf(&b, "<!doctype html><!-- %d -->\n", seed)
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

// randomBlob returns n incompressible bytes.
func randomBlob(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 42}).Read(b)
	return b
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// put stores b and waits for its background compression, failing the test
// on error; it returns the blob's Info with the variants made.
func put(t *testing.T, s *Store, b []byte) Info {
	t.Helper()
	info, err := s.Put(t.Context(), "", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Put(%d bytes): %v", len(b), err)
	}
	return compressed(t, s, info.Hash)
}

// compressed waits for the background compression and returns the blob's
// Info.
func compressed(t *testing.T, s *Store, hash string) Info {
	t.Helper()
	if err := s.WaitCompressed(t.Context()); err != nil {
		t.Fatalf("WaitCompressed: %v", err)
	}
	info, err := s.Stat(hash)
	if err != nil {
		t.Fatalf("Stat(%s): %v", hash, err)
	}
	return info
}

// filesUnder lists the regular files under dir, relative and sorted.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	slices.Sort(files)
	return files
}

// blobFiles returns the files a blob should have on disk.
func blobFiles(info Info) []string {
	files := []string{info.Hash[:2] + "/" + info.Hash}
	for _, v := range info.Variants {
		ext, _ := extFor(v.Encoding)
		files = append(files, info.Hash[:2]+"/"+info.Hash+ext)
	}
	slices.Sort(files)
	return files
}

// readBlob opens a blob (or variant), checks the reported size and returns
// the decompressed bytes.
func readBlob(t *testing.T, s *Store, hash, encoding string) []byte {
	t.Helper()
	f, size, err := s.Open(hash, encoding)
	if err != nil {
		t.Fatalf("Open(%s, %q): %v", hash[:8], encoding, err)
	}
	defer f.Close()
	raw, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s %q: %v", hash[:8], encoding, err)
	}
	if got, want := int64(len(raw)), size; got != want {
		t.Errorf("Open(%s, %q): read %d bytes, reported size %d", hash[:8], encoding, got, want)
	}
	if encoding == "" {
		return raw
	}
	d, err := newDecompressor(encoding, bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("decompress %s %q: %v", hash[:8], encoding, err)
	}
	defer d.Close()
	out, err := io.ReadAll(d)
	if err != nil {
		t.Fatalf("decompress %s %q: %v", hash[:8], encoding, err)
	}
	return out
}

func encodingsOf(info Info) []string {
	var encs []string
	for _, v := range info.Variants {
		encs = append(encs, v.Encoding)
	}
	return encs
}

// flipByte corrupts one byte in the middle of a file.
func flipByte(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// plant writes a file the way a crash could have left it.
func plant(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// failingReader returns n bytes of text, then err.
type failingReader struct {
	n   int
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	k := min(len(p), r.n)
	copy(p, strings.Repeat("x", k))
	r.n -= k
	return k, nil
}

var errBrokenBody = errors.New("connection reset")
