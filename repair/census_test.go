package repair

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/placement"
)

// meta is Meta over one site whose deploys name files.
type meta struct {
	deploys []atoll.Deploy
	files   map[string][]string // deploy id -> blob hashes
}

func (m meta) Sites() ([]atoll.Site, error)           { return []atoll.Site{{Name: "s"}}, nil }
func (m meta) Deploys(string) ([]atoll.Deploy, error) { return m.deploys, nil }
func (m meta) IsLeader() bool                         { return true }
func (m meta) LeaderID() string                       { return "a" }
func (m meta) LeaderChanged() <-chan struct{}         { return nil }
func (m meta) Files(id string, fn func(atoll.File) error) error {
	for _, h := range m.files[id] {
		if err := fn(atoll.File{Hash: h}); err != nil {
			return err
		}
	}
	return nil
}

// cluster is Peers over in-memory nodes: a pull copies a blob from any
// node that holds it; down nodes answer nothing.
type cluster struct {
	mu   sync.Mutex
	held map[string]map[string]bool // node id -> blobs
	down map[string]bool
}

func (c *cluster) Has(_ context.Context, nd atoll.Node, hashes []string) (map[string]int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down[nd.ID] {
		return nil, errUnreachable
	}
	out := map[string]int64{}
	for _, h := range hashes {
		if c.held[nd.ID][h] {
			out[h] = 1
		}
	}
	return out, nil
}

func (c *cluster) Push(_ context.Context, nd atoll.Node, hash string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down[nd.ID] {
		return errUnreachable
	}
	c.held[nd.ID][hash] = true
	return nil
}

func (c *cluster) Pull(_ context.Context, nd atoll.Node, hashes []string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down[nd.ID] {
		return 0, errUnreachable
	}
	got := 0
	for _, h := range hashes {
		for id, blobs := range c.held {
			if blobs[h] && !c.down[id] {
				c.held[nd.ID][h] = true
				got++
				break
			}
		}
	}
	return got, nil
}

type cache struct{ confirmed []string }

func (c *cache) Confirm(h string) { c.confirmed = append(c.confirmed, h) }
func (c *cache) EvictSoon()       {}

func newTestRepairer(t *testing.T, m Meta, peers Peers, view *placement.View) *Repairer {
	t.Helper()
	r, err := New(Config{Self: "a", Interval: time.Hour, PullBatch: 2}, m, nil, peers, &cache{}, func() *placement.View { return view })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A census has the owners that lack blobs pull them from whoever holds
// them, and reports the counts after the pulls: a blob on no node is
// missing, one of an upload in progress on no node is neither missing nor
// under-replicated, and the blobs of a down owner stay under-replicated.
func TestCensus(t *testing.T) {
	view := placement.New(cores("a", "b", "c"), 2)
	var hashes []string
	for i := range 6 {
		hashes = append(hashes, hashN(i))
	}
	m := meta{
		deploys: []atoll.Deploy{{ID: "d1", State: atoll.StateReady}, {ID: "d2", State: atoll.StateUploading}},
		files:   map[string][]string{"d1": hashes[:5], "d2": hashes[4:]},
	}
	c := &cluster{held: map[string]map[string]bool{"a": {}, "b": {}, "c": {}}, down: map[string]bool{}}
	for _, h := range hashes[:3] {
		c.held[ownersOf(view, h)[0]][h] = true // on one owner of two
	}
	// hashes[3]: its owners lack it; a non-owner holds it.
	for _, id := range []string{"a", "b", "c"} {
		if !view.Owns(id, hashes[3]) {
			c.held[id][hashes[3]] = true
		}
	}
	// hashes[4]: on no node (missing); hashes[5]: on no node, named only by
	// an upload in progress.
	r := newTestRepairer(t, m, c, view)
	rep, err := r.Census(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Referenced != 6 || rep.Missing != 1 || rep.UnderReplicated != 1 || rep.Pulled != 5 {
		t.Errorf("report %+v, want 6 referenced, 1 missing, 1 under-replicated (the missing one), 5 pulled", rep)
	}
	for _, h := range hashes[:4] {
		for _, id := range ownersOf(view, h) {
			if !c.held[id][h] {
				t.Errorf("owner %s lacks blob %d after the census", id, slices.Index(hashes, h))
			}
		}
	}
	if got := r.LastReport(); got == nil || *got != rep {
		t.Errorf("LastReport %+v, want the census's %+v", got, rep)
	}

	// An owner goes down: its blobs are under-replicated, and nobody asks it to pull.
	c.down["b"] = true
	rep, err = r.Census(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := 1 // still the missing blob
	for _, h := range hashes[:4] {
		if view.Owns("b", h) {
			want++
		}
	}
	if rep.UnderReplicated != want || rep.Pulled != 0 {
		t.Errorf("with b down: %+v, want %d under-replicated, 0 pulled", rep, want)
	}
}

// LastCopies counts the blobs of complete deploys that no other core node
// holds.
func TestLastCopies(t *testing.T) {
	view := placement.New(cores("a", "b", "c"), 2)
	m := meta{
		deploys: []atoll.Deploy{{ID: "d1", State: atoll.StateReady}, {ID: "d2", State: atoll.StateUploading}},
		files:   map[string][]string{"d1": {hashN(1), hashN(2)}, "d2": {hashN(3)}},
	}
	c := &cluster{held: map[string]map[string]bool{
		"a": {hashN(1): true, hashN(2): true, hashN(3): true},
		"b": {hashN(1): true},
		"c": {},
	}}
	r := newTestRepairer(t, m, c, view)
	got, err := r.LastCopies(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if want := 1; got != want {
		t.Errorf("LastCopies(a) = %d, want %d (blob 2; blob 3 is only an upload in progress)", got, want)
	}
}
