package blobstore

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestCompressionInterruptedByCrash: a blob acknowledged by Put whose
// background compression never ran (the store stopped first, as in a crash
// right after the answer) gets its variants from the next store opened on
// the folder, and serves them.
func TestCompressionInterruptedByCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	content := textBlob(40<<10, 31)
	info := putUncompressed(t, dir, content)

	var mu sync.Mutex
	var notified []string
	s2, err := New(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler), OnVariants: func(h string) {
		mu.Lock()
		notified = append(notified, h)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { s2.Close() })
	got := compressed(t, s2, info.Hash)
	if got, want := encodingsOf(got), []string{"br", "zstd", "gzip"}; !slices.Equal(got, want) {
		t.Fatalf("variants after the restart = %v, want %v", got, want)
	}
	if b := readBlob(t, s2, info.Hash, EncodingBrotli); !bytes.Equal(b, content) {
		t.Error("br variant does not decompress to the content put")
	}
	if err := s2.Verify(info.Hash); err != nil {
		t.Errorf("Verify: %v", err)
	}
	mu.Lock()
	if !slices.Equal(notified, []string{info.Hash}) {
		t.Errorf("OnVariants calls = %v, want [%s]", notified, info.Hash)
	}
	mu.Unlock()
	// Done: no marker left, nothing compressed again at the next start.
	if files, want := filesUnder(t, dir), blobFiles(got); !slices.Equal(files, want) {
		t.Errorf("files on disk = %v, want %v", files, want)
	}
}

// TestStatSeesVariantsMadeLater: a Stat answered (and cached) before the
// background compression ends shows the variants once they are made.
func TestStatSeesVariantsMadeLater(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := New(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler), CompressWorkers: -1})
	if err != nil {
		t.Fatal(err)
	}
	content := textBlob(8<<10, 32)
	info, err := s.Put(t.Context(), "", bytes.NewReader(content))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if before, err := s.Stat(info.Hash); err != nil || len(before.Variants) != 0 {
		t.Fatalf("Stat before compression = %+v, %v; want no variants", before, err)
	}
	// What a worker does with the blob it takes from the queue.
	if err := s.compressPending(t.Context(), info.Hash); err != nil {
		t.Fatalf("compress: %v", err)
	}
	after, err := s.Stat(info.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := encodingsOf(after), []string{"br", "zstd", "gzip"}; !slices.Equal(got, want) {
		t.Errorf("Stat variants after compression = %v, want %v", got, want)
	}
	if _, _, err := s.Open(info.Hash, EncodingBrotli); err != nil {
		t.Errorf("Open br: %v", err)
	}
}

// Bytes that rot on disk between the upload and the compression must not
// spread into variants (which the edge would then serve, checked or not):
// the identity is hashed again before variants are published; on a
// mismatch none is, the marker stays, and OnCorrupt is told.
func TestCompressionRefusesRottenBytes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	content := textBlob(40<<10, 32)
	info := putUncompressed(t, dir, content)
	path := filepath.Join(dir, info.Hash[:2], info.Hash)
	rotten := bytes.Clone(content)
	rotten[1234] ^= 0x20
	if err := os.WriteFile(path, rotten, 0o644); err != nil {
		t.Fatal(err)
	}

	corrupt := make(chan string, 1)
	s2, err := New(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler), OnCorrupt: func(h string) { corrupt <- h }})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { s2.Close() })
	select {
	case h := <-corrupt:
		if h != info.Hash {
			t.Errorf("OnCorrupt(%s), want %s", h, info.Hash)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("OnCorrupt was not called for a blob whose bytes rotted")
	}
	if err := s2.WaitCompressed(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := s2.Stat(info.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if enc := encodingsOf(got); len(enc) != 0 {
		t.Errorf("variants of rotten bytes published: %v", enc)
	}
	for _, ext := range []string{".br", ".zst", ".gz"} {
		if _, err := os.Lstat(path + ext); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s%s exists (%v), want no variant", info.Hash, ext, err)
		}
	}
	if _, err := os.Lstat(path + pendingExt); err != nil {
		t.Errorf("pending marker: %v, want it kept", err)
	}
}

// putUncompressed puts content in a store on dir that has no compression
// workers, and closes it: the blob is left pending, as after a crash right
// after its Put was acknowledged.
func putUncompressed(t *testing.T, dir string, content []byte) Info {
	t.Helper()
	s, err := New(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler), CompressWorkers: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	info, err := s.Put(t.Context(), "", bytes.NewReader(content))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got := encodingsOf(info); len(got) != 0 {
		t.Fatalf("variants before the compression ran = %v, want none", got)
	}
	return info
}

// TestPending: Info.Pending says a blob is queued for its variants, from
// Put, from the disk after a reopen, and no longer once the compressor has
// decided, whether it kept variants or none; OnVariants fires either way.
func TestPending(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		content      []byte
		wantPending  bool
		wantVariants bool
	}{
		{"text", textBlob(8<<10, 33), true, true},
		{"incompressible but not sniffed", randomBlob(8<<10, 33), true, false},
		{"tiny", []byte("hello"), false, false},
		{"png", append([]byte("\x89PNG\r\n\x1a\n"), randomBlob(1<<10, 34)...), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var told []string
			cfg := Config{Dir: dir, Logger: slog.New(slog.DiscardHandler), CompressWorkers: -1,
				OnVariants: func(hash string) { told = append(told, hash) }}
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			info, err := s.Put(t.Context(), "", bytes.NewReader(tt.content))
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if info.Pending != tt.wantPending {
				t.Errorf("Put: Pending = %v, want %v", info.Pending, tt.wantPending)
			}
			s.Close()
			if s, err = New(cfg); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got, err := s.Stat(info.Hash); err != nil || got.Pending != tt.wantPending {
				t.Errorf("Stat after reopen = %+v, %v; want Pending %v", got, err, tt.wantPending)
			}
			if err := s.Compress(t.Context(), info.Hash); err != nil {
				t.Fatalf("Compress: %v", err)
			}
			got, err := s.Stat(info.Hash)
			if err != nil || got.Pending || (len(got.Variants) > 0) != tt.wantVariants {
				t.Errorf("Stat after compression = %+v, %v; want not pending, variants %v", got, err, tt.wantVariants)
			}
			if tt.wantPending && !slices.Equal(told, []string{info.Hash}) {
				t.Errorf("OnVariants called for %v, want once for the blob", told)
			}
		})
	}
}
