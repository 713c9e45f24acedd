package scrub_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/scrub"
)

// text returns compressible bytes, different for each seed.
func text(seed int) []byte {
	return []byte(strings.Repeat(fmt.Sprintf("<p>scrub %d</p>\n", seed), 400))
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// otherNodes is scrub.Holders: the healthy copies other nodes hold, put
// into the local store on Fetch as node's read-through fetch does.
type otherNodes struct {
	store  *blobstore.Store
	copies map[string][]byte
}

func (o otherNodes) Fetch(ctx context.Context, hash string) error {
	b, ok := o.copies[hash]
	if !ok {
		return fmt.Errorf("blob %s: %w: no source had it", hash, blobstore.ErrNotFound)
	}
	_, err := o.store.Put(ctx, hash, bytes.NewReader(b))
	return err
}

// edge is scrub.Edge: it counts invalidations.
type edge struct {
	mu          sync.Mutex
	invalidated map[string]int
}

func (e *edge) Invalidate(hash string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.invalidated[hash]++
}

func (e *edge) count(hash string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.invalidated[hash]
}

// fixture is a scrubber over a real blob store in a temp dir.
type fixture struct {
	dir    string
	store  *blobstore.Store
	others otherNodes
	edge   *edge
	s      *scrub.Scrubber
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	bcfg := blobstore.DefaultConfig()
	bcfg.Dir = filepath.Join(dir, "blobs")
	bcfg.CompressWorkers = 1
	store, err := blobstore.New(bcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := &fixture{dir: dir, store: store, others: otherNodes{store, map[string][]byte{}}, edge: &edge{invalidated: map[string]int{}}}
	f.s, err = scrub.New(scrub.Config{Self: "core1", StateFile: filepath.Join(dir, "scrub.json"), Rate: 1 << 30, Interval: time.Hour},
		store, f.others, f.edge)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.s.Close)
	return f
}

// put stores b and waits until its variants are made.
func (f *fixture) put(t *testing.T, b []byte) string {
	t.Helper()
	h := hashOf(b)
	if _, err := f.store.Put(t.Context(), h, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if err := f.store.WaitCompressed(t.Context()); err != nil {
		t.Fatal(err)
	}
	return h
}

// flip corrupts one byte in the middle of a file in place, as a disk rots.
func flip(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x20
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) quarantined(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(f.dir, "blobs", blobstore.QuarantineFolder))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return len(entries)
}

// Check of one copy: what it finds, whether the copy is quarantined, and
// whether a healthy one takes its place.
func TestCheck(t *testing.T) {
	tests := []struct {
		name           string
		rot            string // file extension to corrupt: "" identity, ".gz" a variant; "-" none
		elsewhere      bool   // another node holds a healthy copy
		stored         bool
		want           scrub.Result
		wantQuarantine int
		wantStored     bool // an intact copy is stored afterwards
	}{
		{"intact copy", "-", false, true, scrub.Result{Checked: true}, 0, true},
		{"rotten identity, another node has it", "", true, true, scrub.Result{Checked: true, Corrupt: true, Repaired: true}, 1, true},
		{"rotten identity, no copy anywhere", "", false, true, scrub.Result{Checked: true, Corrupt: true}, 1, false},
		{"rotten variant, no copy anywhere: rebuilt from the identity bytes", ".gz", false, true, scrub.Result{Checked: true, Corrupt: true, Repaired: true}, 1, true},
		{"deleted since it was listed", "-", false, false, scrub.Result{}, 0, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			b := text(i)
			h := hashOf(b)
			if tc.stored {
				f.put(t, b)
			}
			if tc.elsewhere {
				f.others.copies[h] = b
			}
			if tc.rot != "-" {
				flip(t, filepath.Join(f.dir, "blobs", h[:2], h+tc.rot))
			}
			if got := f.s.Check(t.Context(), h); got != tc.want {
				t.Errorf("Check = %+v, want %+v", got, tc.want)
			}
			if got := f.quarantined(t); got != tc.wantQuarantine {
				t.Errorf("quarantine holds %d folders, want %d", got, tc.wantQuarantine)
			}
			if got := f.store.Verify(h) == nil; got != tc.wantStored {
				t.Errorf("intact copy stored afterwards: %v, want %v", got, tc.wantStored)
			}
			if tc.want.Corrupt && f.edge.count(h) == 0 {
				t.Errorf("the edge was not told to forget blob %s", h[:8])
			}
		})
	}
}

// A pass on request checks every blob, replaces the rotten one, reports
// its counts, and records the end of a complete pass in the state file.
func TestRequestedPass(t *testing.T) {
	f := newFixture(t)
	var hashes []string
	for i := range 4 {
		hashes = append(hashes, f.put(t, text(100+i)))
	}
	rotten := hashes[2]
	f.others.copies[rotten] = text(102)
	flip(t, filepath.Join(f.dir, "blobs", rotten[:2], rotten))

	select {
	case <-f.s.Request():
	case <-time.After(time.Minute):
		t.Fatal("the pass did not end")
	}
	st := f.s.Status()
	if st.ID != "core1" || st.Trigger != scrub.TriggerRequest || st.Running || st.Checked != 4 || st.Corrupt != 1 || st.Repaired != 1 || st.Error != "" {
		t.Errorf("status %+v, want core1's requested pass over 4 blobs, 1 corrupt and repaired", st)
	}
	b, err := os.ReadFile(filepath.Join(f.dir, "scrub.json"))
	if err != nil {
		t.Fatal(err)
	}
	var saved struct {
		LastPass time.Time `json:"last_pass"`
		Cursor   string    `json:"cursor"`
	}
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatalf("scrub.json %q: %v", b, err)
	}
	if !saved.LastPass.Equal(st.Finished) || saved.Cursor != "" {
		t.Errorf("scrub.json %s, want last_pass %s and no cursor", b, st.Finished)
	}
}

// Nothing starts once the scrubber is closed: CheckLater refuses, and a
// requested pass ends at once without checking anything.
func TestNothingStartsAfterClose(t *testing.T) {
	f := newFixture(t)
	f.put(t, text(300))
	f.s.Close()
	if err := f.s.CheckLater([]string{hashOf([]byte("x"))}); !errors.Is(err, scrub.ErrClosed) {
		t.Errorf("CheckLater after Close: %v, want ErrClosed", err)
	}
	select {
	case <-f.s.Request():
	default:
		t.Fatal("a pass requested after Close is not over at once")
	}
	if st := f.s.Status(); st.Running || st.Checked != 0 {
		t.Errorf("status after a request on a closed scrubber: %+v, want nothing checked", st)
	}
}

// A background pass interrupted by a restart resumes after the last blob
// it reached (scrub.json's cursor), once a full pass is due.
func TestBackgroundPassResumesAfterCursor(t *testing.T) {
	f := newFixture(t)
	var hashes []string
	for i := range 5 {
		hashes = append(hashes, f.put(t, text(200+i)))
	}
	slices.Sort(hashes)
	cursor := hashes[1]
	state := fmt.Sprintf(`{"last_pass":%q,"cursor":%q}`, time.Now().Add(-2*time.Hour).UTC().Format(time.RFC3339Nano), cursor)
	if err := os.WriteFile(filepath.Join(f.dir, "scrub.json"), []byte(state), 0o640); err != nil {
		t.Fatal(err)
	}
	f.s.Start()
	deadline := time.Now().Add(time.Minute)
	st := f.s.Status()
	for st.Finished.IsZero() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		st = f.s.Status()
	}
	if st.Trigger != scrub.TriggerBackground || st.Checked != 3 || st.Error != "" {
		t.Errorf("status %+v, want a background pass over the 3 blobs after the cursor", st)
	}
}
