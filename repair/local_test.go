package repair

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/placement"
)

// disk is Local over the blobs the cluster fake says node id holds.
type disk struct {
	c  *cluster
	id string
}

func (d disk) Walk(ctx context.Context, fn func(string) error) error {
	d.c.mu.Lock()
	var hashes []string
	for h := range d.c.held[d.id] {
		hashes = append(hashes, h)
	}
	d.c.mu.Unlock()
	slices.Sort(hashes)
	for _, h := range hashes {
		if err := fn(h); err != nil {
			return err
		}
	}
	return nil
}

func (d disk) Delete(h string) error {
	d.c.mu.Lock()
	defer d.c.mu.Unlock()
	delete(d.c.held[d.id], h)
	return nil
}

// The local pass hands the referenced blobs this node does not own to
// their owners, confirms them once every owner holds them, counts what is
// left for the drain, and deletes an unreferenced blob on the pass after
// the one that first saw it unreferenced (GCGrace 0).
func TestLocalPass(t *testing.T) {
	view := placement.New(cores("a", "b", "c"), 1)
	var notOwned, unref string
	for i := 0; notOwned == "" || unref == ""; i++ {
		h := hashN(i)
		switch {
		case view.Owns("a", h):
		case notOwned == "":
			notOwned = h
		default:
			unref = h
		}
	}
	m := meta{deploys: []atoll.Deploy{{ID: "d1", State: atoll.StateReady}}, files: map[string][]string{"d1": {notOwned}}}
	c := &cluster{held: map[string]map[string]bool{"a": {notOwned: true, unref: true}, "b": {}, "c": {}}, down: map[string]bool{}}
	owner := ownersOf(view, notOwned)[0]
	cc := &cache{}
	r, err := New(Config{Self: "a", Interval: time.Hour, PullBatch: 10}, m, disk{c, "a"}, c, cc, func() *placement.View { return view })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.DrainLeft(), -1; got != want {
		t.Errorf("DrainLeft before a pass = %d, want %d", got, want)
	}

	c.down[owner] = true
	if err := r.LocalPass(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := r.DrainLeft(), 1; got != want {
		t.Errorf("DrainLeft with the owner down = %d, want %d", got, want)
	}
	if !c.held["a"][unref] {
		t.Error("the unreferenced blob was deleted on the pass that first saw it")
	}

	c.down[owner] = false
	if err := r.LocalPass(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := r.DrainLeft(), 0; got != want {
		t.Errorf("DrainLeft with the owner back = %d, want %d", got, want)
	}
	if !c.held[owner][notOwned] || !slices.Contains(cc.confirmed, notOwned) {
		t.Errorf("owner %s holds the blob: %v, confirmed here: %v; want both", owner, c.held[owner][notOwned], cc.confirmed)
	}
	if c.held["a"][unref] {
		t.Error("the unreferenced blob survived its grace")
	}
}
