package blobstore

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// variantsRecord is one record of a test batch of variants.
type variantsRecord struct {
	hash, header string
	body         []byte
}

// variantsOf returns a VariantsNext yielding recs, then err (io.EOF when
// nil).
func variantsOf(recs []variantsRecord, err error) VariantsNext {
	i := 0
	return func() (string, string, io.Reader, error) {
		if i == len(recs) {
			if err == nil {
				err = io.EOF
			}
			return "", "", nil, err
		}
		i++
		r := recs[i-1]
		return r.hash, r.header, bytes.NewReader(r.body), nil
	}
}

// waitingBlobs puts count text blobs into s (which waits for their
// variants) and returns them with the records another store's variants of
// them make.
func waitingBlobs(t *testing.T, s *Store, count int, seed uint64) ([][]byte, []variantsRecord) {
	t.Helper()
	var blobs [][]byte
	var recs []variantsRecord
	for i := range count {
		b := textBlob(4<<10+i*1000, seed+uint64(i))
		header, body := madeElsewhere(t, b)
		if _, err := s.Put(t.Context(), "", bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, b)
		recs = append(recs, variantsRecord{hashOf(b), header, body})
	}
	return blobs, recs
}

// TestAcceptVariantsBatch: one batch settles every waiting blob whose
// variants are sound, and says per record what became of the others
// without letting them stop the rest: a blob not stored here, a variant
// that does not decompress to its blob (compressed here at once), a
// record of the wrong size (left waiting), a blob settled already, a
// repeat.
func TestAcceptVariantsBatch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := waitingStore(t, dir, time.Hour)
	blobs, recs := waitingBlobs(t, s, 6, 40)

	corrupt := slices.Clone(recs[1].body)
	corrupt[len(corrupt)/2] ^= 0xff
	settled, err := s.Put(t.Context(), "", bytes.NewReader(textBlob(9000, 50)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Compress(t.Context(), settled.Hash); err != nil {
		t.Fatal(err)
	}
	var (
		mu          sync.Mutex
		invalidated = map[string]bool{}
	)
	s.onVariants = func(h string) {
		mu.Lock()
		invalidated[h] = true
		mu.Unlock()
	}
	settledHeader, settledBody := madeElsewhere(t, textBlob(9000, 50))
	missing := textBlob(5000, 51)
	missingHeader, missingBody := madeElsewhere(t, missing)

	batch := []variantsRecord{
		recs[0],
		{recs[1].hash, recs[1].header, corrupt},
		{hashOf(missing), missingHeader, missingBody},
		{recs[2].hash, recs[3].header, recs[3].body}, // another blob's size
		recs[4],
		{settled.Hash, settledHeader, settledBody},
		recs[4], // a repeat
		recs[5],
	}
	results, err := s.AcceptVariantsBatch(t.Context(), variantsOf(batch, nil))
	if err != nil {
		t.Fatalf("AcceptVariantsBatch: %v", err)
	}
	want := []error{nil, ErrHashMismatch, ErrNotFound, ErrMalformed, nil, nil, ErrMalformed, nil}
	if len(results) != len(want) {
		t.Fatalf("%d results, want %d", len(results), len(want))
	}
	for i, r := range results {
		if r.Hash != batch[i].hash {
			t.Errorf("result %d is of %.8s, want %.8s", i, r.Hash, batch[i].hash)
		}
		if (want[i] == nil) != (r.Err == nil) || (want[i] != nil && !errors.Is(r.Err, want[i])) {
			t.Errorf("result %d: %v, want %v", i, r.Err, want[i])
		}
	}
	for _, i := range []int{0, 4, 5} {
		info := results[slices.IndexFunc(batch, func(r variantsRecord) bool { return r.hash == recs[i].hash })].Info
		if info.Pending || !slices.Equal(encodingsOf(info), []string{"br", "zstd", "gzip"}) {
			t.Errorf("blob %d after the batch: %+v, want br, zstd, gzip, not pending", i, info)
		}
		if got := readBlob(t, s, recs[i].hash, EncodingGzip); !bytes.Equal(got, blobs[i]) {
			t.Errorf("blob %d: its gzip variant does not decompress to it", i)
		}
		if err := s.Verify(recs[i].hash); err != nil {
			t.Errorf("Verify blob %d: %v", i, err)
		}
	}
	mu.Lock()
	for _, i := range []int{0, 4, 5} {
		if !invalidated[recs[i].hash] {
			t.Errorf("OnVariants not called for blob %d", i)
		}
	}
	if invalidated[settled.Hash] || invalidated[recs[2].hash] {
		t.Error("OnVariants called for a blob the batch did not settle")
	}
	mu.Unlock()
	if info, _ := s.Stat(recs[2].hash); !info.Pending {
		t.Errorf("blob sent a record of the wrong size: %+v, want still waiting", info)
	}
	// The blob sent a corrupt variant is compressed here; the one sent a
	// record of the wrong size still waits.
	c := &s.comp
	c.mu.Lock()
	states := map[string]uint8{recs[1].hash: c.state[recs[1].hash], recs[2].hash: c.state[recs[2].hash]}
	c.mu.Unlock()
	if states[recs[1].hash] == waitingState || states[recs[2].hash] != waitingState {
		t.Errorf("states: corrupt one %d, wrong size %d; want queued or done, and waiting (%d)", states[recs[1].hash], states[recs[2].hash], waitingState)
	}
	if got := s.CompressStats().Accepted; got != 3 {
		t.Errorf("CompressStats().Accepted = %d, want 3", got)
	}
	if left := filesUnder(t, filepath.Join(dir, TempFolder)); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// TestAcceptVariantsBatchBroken: a batch whose stream fails installs
// nothing, not even the records before the failure, and leaves no temp
// file: every blob keeps waiting for its variants.
func TestAcceptVariantsBatchBroken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := waitingStore(t, dir, time.Hour)
	_, recs := waitingBlobs(t, s, 3, 60)
	broken := errors.New("connection reset")
	if _, err := s.AcceptVariantsBatch(t.Context(), variantsOf(recs[:2], broken)); !errors.Is(err, broken) {
		t.Fatalf("AcceptVariantsBatch of a broken stream: %v, want %v", err, broken)
	}
	for i, r := range recs {
		if info, _ := s.Stat(r.hash); !info.Pending || len(info.Variants) != 0 {
			t.Errorf("blob %d after a broken batch: %+v, want pending, no variant", i, info)
		}
	}
	if got := s.PendingCompression(); got != 3 {
		t.Errorf("PendingCompression = %d, want 3", got)
	}
	if left := filesUnder(t, filepath.Join(dir, TempFolder)); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// TestAcceptVariantsBatchCrashStates: a crash at any step of a batch
// leaves each blob either pending (its variants made again after the
// restart) or settled with variants that decompress to it, and no temp
// file once the store is reopened.
func TestAcceptVariantsBatchCrashStates(t *testing.T) {
	dir := t.TempDir()
	s := waitingStore(t, dir, time.Hour)
	blobs, recs := waitingBlobs(t, s, 4, 70)
	snaps := copyAtSteps(t, dir, func() error {
		_, err := s.AcceptVariantsBatch(t.Context(), variantsOf(recs, nil))
		return err
	})
	// received, synced, placed for each blob, committed.
	if got, want := len(snaps), 2+len(recs)+1; got != want {
		t.Fatalf("%d crash points, want %d", got, want)
	}
	for _, snap := range snaps {
		t.Run(filepath.Base(snap), func(t *testing.T) {
			var pending int
			for _, r := range recs {
				if _, err := os.Stat(filepath.Join(snap, r.hash[:2], r.hash+pendingExt)); err == nil {
					pending++
				}
			}
			if pending != len(recs) {
				t.Errorf("%d of %d markers before the restart: a marker went before the renames were durable", pending, len(recs))
			}
			r := openTestStore(t, snap)
			for i, rec := range recs {
				info := compressed(t, r, rec.hash)
				if info.Pending || !slices.Equal(encodingsOf(info), []string{"br", "zstd", "gzip"}) {
					t.Errorf("blob %d after the restart: %+v, want br, zstd, gzip", i, info)
				}
				if err := r.Verify(rec.hash); err != nil {
					t.Errorf("Verify blob %d: %v", i, err)
				}
				if got := readBlob(t, r, rec.hash, EncodingBrotli); !bytes.Equal(got, blobs[i]) {
					t.Errorf("blob %d: br variant does not decompress to it", i)
				}
			}
			if left := filesUnder(t, filepath.Join(snap, TempFolder)); len(left) != 0 {
				t.Errorf("temp files after reopening: %v", left)
			}
		})
	}
}
