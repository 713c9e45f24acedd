package blobstore

import (
	"bytes"
	"log/slog"
	"slices"
	"sync"
	"testing"
)

// TestCompressionInterruptedByCrash: a blob acknowledged by Put whose
// background compression never ran (the store stopped first, as in a crash
// right after the answer) gets its variants from the next store opened on
// the folder, and serves them.
func TestCompressionInterruptedByCrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	content := textBlob(40<<10, 31)
	// No workers: the compression cannot run before the "crash".
	s, err := New(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler), CompressWorkers: -1})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Put(t.Context(), "", bytes.NewReader(content))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got := encodingsOf(info); len(got) != 0 {
		t.Fatalf("variants before the compression ran = %v, want none", got)
	}
	s.Close()

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
