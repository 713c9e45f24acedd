package blobstore

import (
	"bytes"
	"log/slog"
	"testing"
	"time"
)

// Workers give way to uploads that are still coming in, but never let a
// queued blob wait past maxDeferral.
func TestCompressionGivesWayToIngest(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name       string
		lastQueued time.Time // the last blob queued
		head       time.Time // when the oldest queued blob was queued
		wantWait   bool
	}{
		{"uploads still coming", now, now.Add(-time.Second), true},
		{"no upload for a while", now.Add(-2 * ingestQuiet), now.Add(-time.Second), false},
		{"oldest blob waited long enough", now, now.Add(-maxDeferral - time.Second), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c compressor
			c.queue = []queuedBlob{{hash: "x", at: tc.head}}
			c.lastQueued.Store(tc.lastQueued.UnixNano())
			got := c.deferral()
			if (got > 0) != tc.wantWait || got > ingestQuiet {
				t.Errorf("deferral() = %v, want a wait: %v (at most %v)", got, tc.wantWait, ingestQuiet)
			}
		})
	}
}

// PendingCompression counts what the workers still have to do, and drops
// to zero once the variants are made.
func TestPendingCompressionCountsQueuedBlobs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := New(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler), CompressWorkers: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.Put(t.Context(), "", bytes.NewReader(textBlob(8<<10, uint64(i)))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Put(t.Context(), "", bytes.NewReader(textBlob(100, 9))); err != nil {
		t.Fatal(err)
	}
	if got := s.PendingCompression(); got != 3 {
		t.Errorf("PendingCompression() = %d after 3 compressible Puts and a tiny one, want 3", got)
	}
	s.Close()

	s2 := openTestStore(t, dir) // with workers: they take over the markers
	if err := s2.WaitCompressed(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s2.PendingCompression(); got != 0 {
		t.Errorf("PendingCompression() = %d once compressed, want 0", got)
	}
}
