package blobstore

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// batchOf returns a BatchNext yielding blobs under the given hashes.
func batchOf(hashes []string, blobs [][]byte) BatchNext {
	i := 0
	return func() (string, io.Reader, error) {
		if i == len(blobs) {
			return "", nil, io.EOF
		}
		i++
		return hashes[i-1], bytes.NewReader(blobs[i-1]), nil
	}
}

// testBatch is a batch of text and binary blobs of several sizes.
func testBatch() (hashes []string, blobs [][]byte) {
	for i := range 12 {
		var b []byte
		switch i % 3 {
		case 0:
			b = textBlob(1000+i*300, uint64(i))
		case 1:
			b = randomBlob(5000+i, uint64(i))
		default:
			b = textBlob(100, uint64(i)) // too small to compress: no marker
		}
		blobs = append(blobs, b)
		hashes = append(hashes, hashOf(b))
	}
	return hashes, blobs
}

func TestPutBatchStoresEveryBlob(t *testing.T) {
	s, dir := newTestStore(t)
	hashes, blobs := testBatch()
	// A blob stored already and a repeat within the batch are answered too.
	put(t, s, blobs[0])
	hashes, blobs = append(hashes, hashes[1]), append(blobs, blobs[1])

	infos, err := s.PutBatch(t.Context(), batchOf(hashes, blobs))
	if err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
	if got, want := len(infos), len(blobs); got != want {
		t.Fatalf("PutBatch returned %d Infos, want %d", got, want)
	}
	for i, b := range blobs {
		if infos[i].Hash != hashes[i] || infos[i].Size != int64(len(b)) {
			t.Errorf("Info %d = %s/%d, want %s/%d", i, infos[i].Hash, infos[i].Size, hashes[i], len(b))
		}
		if got := readBlob(t, s, hashes[i], ""); !bytes.Equal(got, b) {
			t.Errorf("blob %d read back differs", i)
		}
	}
	if left := filesUnder(t, filepath.Join(dir, "temp")); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
	// The variants follow in the background, as after Put.
	if info := compressed(t, s, hashes[3]); len(info.Variants) == 0 {
		t.Errorf("blob 3 (text) has no variants after compression: %+v", info)
	}
	if err := s.Verify(hashes[3]); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestPutBatchRefusesWholeBatch(t *testing.T) {
	hashes, blobs := testBatch()
	tests := []struct {
		name  string
		spoil func(hashes []string, blobs [][]byte) ([]string, BatchNext)
		want  error
	}{
		{"one blob's bytes do not match", func(h []string, b [][]byte) ([]string, BatchNext) {
			bad := bytes.Clone(b[7])
			bad[0] ^= 1
			b2 := append(append([][]byte{}, b[:7]...), bad)
			return h, batchOf(h, append(b2, b[8:]...))
		}, ErrHashMismatch},
		{"an invalid hash", func(h []string, b [][]byte) ([]string, BatchNext) {
			h2 := append([]string{}, h...)
			h2[5] = "../../etc/passwd"
			return h, batchOf(h2, b)
		}, ErrInvalidHash},
		{"the source fails mid-batch", func(h []string, b [][]byte) ([]string, BatchNext) {
			next := batchOf(h, b)
			n := 0
			return h, func() (string, io.Reader, error) {
				if n++; n == 9 {
					return "", nil, errors.New("connection reset")
				}
				return next()
			}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, dir := newTestStore(t)
			check, next := tt.spoil(hashes, blobs)
			_, err := s.PutBatch(t.Context(), next)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("PutBatch err = %v, want %v", err, tt.want)
			}
			for i, h := range check {
				if s.Has(h) {
					t.Errorf("blob %d stored by a refused batch", i)
				}
			}
			if left := filesUnder(t, dir); len(left) != 0 {
				t.Errorf("files left by a refused batch: %v", left)
			}
		})
	}
}

// TestPutBatchCrashStates copies the store's folder at each step of a
// PutBatch, as a crash there would leave it (the files as they stand,
// none of the process's memory), reopens each copy and checks that it is
// consistent: every blob of the batch whole or absent, nothing in temp/,
// no pending marker without its blob, a visible blob queued for its
// variants, and a Put of each blob works.
func TestPutBatchCrashStates(t *testing.T) {
	s, dir := newTestStore(t)
	hashes, blobs := testBatch()
	snaps := copyAtSteps(t, dir, func() error {
		_, err := s.PutBatch(t.Context(), batchOf(hashes, blobs))
		return err
	})
	// received, synced, a marker for each of the 8 blobs that may
	// compress, a rename for each blob, committed.
	if got, want := len(snaps), 2+8+len(blobs)+1; got != want {
		t.Fatalf("%d crash points, want %d", got, want)
	}
	for _, snap := range snaps {
		t.Run(filepath.Base(snap), func(t *testing.T) {
			r := openTestStore(t, snap)
			if left := filesUnder(t, filepath.Join(snap, "temp")); len(left) != 0 {
				t.Errorf("temp files after reopening: %v", left)
			}
			for i, h := range hashes {
				if _, err := os.Stat(r.path(h) + pendingExt); err == nil && !r.Has(h) {
					t.Errorf("blob %d: pending marker without its blob", i)
				}
				if r.Has(h) {
					if got := readBlob(t, r, h, ""); !bytes.Equal(got, blobs[i]) {
						t.Errorf("blob %d visible but not whole", i)
					}
					// A blob made visible is queued for its variants.
					if i%3 == 0 && len(compressed(t, r, h).Variants) == 0 {
						t.Errorf("text blob %d visible without variants, never to be made", i)
					}
				}
				if _, err := r.Put(t.Context(), h, bytes.NewReader(blobs[i])); err != nil {
					t.Errorf("Put of blob %d after the crash: %v", i, err)
				}
				if err := r.Verify(h); err != nil {
					t.Errorf("Verify blob %d: %v", i, err)
				}
			}
		})
	}
}

// copyAtSteps runs batch with batchStep set to copy the store folder dir
// at each step, and returns the copies, each named after its step.
func copyAtSteps(t *testing.T, dir string, batch func() error) []string {
	t.Helper()
	var snaps []string
	batchStep = func(step string) {
		snap := filepath.Join(t.TempDir(), step)
		if out, err := exec.Command("cp", "-a", dir, snap).CombinedOutput(); err != nil {
			t.Fatalf("copy the store at %s: %v: %s", step, err, out)
		}
		snaps = append(snaps, snap)
	}
	defer func() { batchStep = nil }()
	if err := batch(); err != nil {
		t.Fatalf("the batch: %v", err)
	}
	return snaps
}

// A batch's pending markers are links to one file: one inode for the
// batch, not one per blob. Each is still an ordinary marker: Stat reports
// the blob pending, a compression pass removes it, and a reopened store
// queues the blobs whose markers are left.
func TestPutBatchMarkersShareOneFile(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler), CompressWorkers: -1})
	if err != nil {
		t.Fatal(err)
	}
	hashes, blobs := testBatch()
	if _, err := s.PutBatch(t.Context(), batchOf(hashes, blobs)); err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
	var first os.FileInfo
	var marked []string
	for i, h := range hashes {
		fi, err := os.Stat(s.path(h) + pendingExt)
		if err != nil {
			continue
		}
		marked = append(marked, h)
		if info, err := s.Stat(h); err != nil || !info.Pending {
			t.Errorf("blob %d: Stat = %+v, %v; want pending", i, info, err)
		}
		if first == nil {
			first = fi
		} else if !os.SameFile(first, fi) {
			t.Errorf("blob %d: its marker is a file of its own, not a link to the batch's", i)
		}
	}
	if got, want := len(marked), 8; got != want { // the 4 text and 4 random blobs of 1 KB and more
		t.Fatalf("%d markers, want %d", got, want)
	}
	if left := filesUnder(t, filepath.Join(dir, "temp")); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
	// A compression pass removes one link; the others stay.
	if err := s.Compress(t.Context(), marked[0]); err != nil {
		t.Fatalf("Compress: %v", err)
	}
	if info, _ := s.Stat(marked[0]); info.Pending {
		t.Errorf("blob still pending after its compression pass")
	}
	if info, _ := s.Stat(marked[1]); !info.Pending {
		t.Errorf("another blob of the batch lost its marker")
	}
	s.Close()
	r := openTestStore(t, dir)
	for _, h := range marked[1:] {
		if info := compressed(t, r, h); info.Pending {
			t.Errorf("blob %s still pending after the reopened store's passes", h)
		}
	}
}

// New makes every shard folder, so the first blobs of a new store need no
// folder creation (and no fsync of the store folder each) while they are
// committed; a folder removed while the store was closed is made again.
func TestNewMakesEveryShardFolder(t *testing.T) {
	s, dir := newTestStore(t)
	shards := func() int {
		t.Helper()
		n, err := filepath.Glob(filepath.Join(dir, "[0-9a-f][0-9a-f]"))
		if err != nil {
			t.Fatal(err)
		}
		return len(n)
	}
	if got := shards(); got != 256 {
		t.Fatalf("%d shard folders after New, want 256", got)
	}
	s.Close()
	if err := os.Remove(filepath.Join(dir, "7f")); err != nil {
		t.Fatal(err)
	}
	r := openTestStore(t, dir)
	if got := shards(); got != 256 {
		t.Fatalf("%d shard folders after reopening, want 256", got)
	}
	b := textBlob(3000, 77)
	for hashOf(b)[:2] != "7f" { // a blob of the folder that was removed
		b = append(b, ' ')
	}
	put(t, r, b)
	if got := readBlob(t, r, hashOf(b), ""); !bytes.Equal(got, b) {
		t.Errorf("blob of shard 7f read back differs")
	}
}
