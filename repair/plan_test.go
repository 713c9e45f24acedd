package repair

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/placement"
)

func cores(ids ...string) []atoll.Node {
	out := make([]atoll.Node, len(ids))
	for i, id := range ids {
		out[i] = atoll.Node{ID: id, Role: atoll.RoleCore, State: atoll.NodeActive}
	}
	return out
}

func hashN(i int) string { return fmt.Sprintf("%064x", i*7919+1) }

var errUnreachable = errors.New("connection refused")

// holding says which owners of each blob answer that they hold it; the
// others answer without it. Owners in unreachable answer with an error.
func holding(view *placement.View, held map[string][]string, unreachable ...string) map[string]Answer {
	out := map[string]Answer{}
	for _, c := range view.Cores() {
		out[c.ID] = Answer{Held: map[string]bool{}}
	}
	for h, ids := range held {
		for _, id := range ids {
			out[id].Held[h] = true
		}
	}
	for _, id := range unreachable {
		out[id] = Answer{Err: errUnreachable}
	}
	return out
}

// ownersOf returns the ids of the owners of h, best first.
func ownersOf(view *placement.View, h string) []string {
	var ids []string
	for _, o := range view.Owners(h) {
		ids = append(ids, o.ID)
	}
	return ids
}

// pullsOf flattens a plan's pulls to node id -> hashes.
func pullsOf(p Plan) map[string][]string {
	out := map[string][]string{}
	for _, pl := range p.Pulls {
		out[pl.Node.ID] = pl.Hashes
	}
	return out
}

// TestDecide: the census's plan from what the owners and the other nodes
// reported, on 3 core nodes with R=2 unless a row says otherwise.
func TestDecide(t *testing.T) {
	view := placement.New(cores("a", "b", "c"), 2)
	h := hashN(1)
	first, second := ownersOf(view, h)[0], ownersOf(view, h)[1]
	var nonOwner string
	for _, c := range []string{"a", "b", "c"} {
		if c != first && c != second {
			nonOwner = c
		}
	}
	capped := placement.New(cores("a", "b"), 3)

	tests := []struct {
		name      string
		view      *placement.View
		ref       map[string]bool // hash -> only uploads in progress name it
		owners    func(view *placement.View) map[string]Answer
		elsewhere map[string]int
		wantPulls map[string][]string
		wantUnder int
		wantMiss  int
		wantNotUp []string
	}{
		{
			name: "all present", view: view, ref: map[string]bool{h: false},
			owners:    func(v *placement.View) map[string]Answer { return holding(v, map[string][]string{h: {first, second}}) },
			wantPulls: map[string][]string{},
		},
		{
			name: "one owner lacks", view: view, ref: map[string]bool{h: false},
			owners:    func(v *placement.View) map[string]Answer { return holding(v, map[string][]string{h: {first}}) },
			wantPulls: map[string][]string{second: {h}}, wantUnder: 1,
		},
		{
			name: "no copy anywhere", view: view, ref: map[string]bool{h: false},
			owners:    func(v *placement.View) map[string]Answer { return holding(v, nil) },
			wantPulls: map[string][]string{first: {h}, second: {h}}, wantUnder: 1, wantMiss: 1,
		},
		{
			name: "no copy anywhere, named only by an upload in progress", view: view, ref: map[string]bool{h: true},
			owners:    func(v *placement.View) map[string]Answer { return holding(v, nil) },
			wantPulls: map[string][]string{}, wantNotUp: []string{h},
		},
		{
			name: "holder not an owner", view: view, ref: map[string]bool{h: false},
			owners:    func(v *placement.View) map[string]Answer { return holding(v, map[string][]string{h: {nonOwner}}) },
			elsewhere: map[string]int{h: 1},
			wantPulls: map[string][]string{first: {h}, second: {h}}, wantUnder: 1,
		},
		{
			name: "owner unreachable", view: view, ref: map[string]bool{h: false},
			owners: func(v *placement.View) map[string]Answer {
				return holding(v, map[string][]string{h: {first}}, second)
			},
			wantPulls: map[string][]string{}, wantUnder: 1,
		},
		{
			name: "R capped by core count", view: capped, ref: map[string]bool{h: false},
			owners:    func(v *placement.View) map[string]Answer { return holding(v, map[string][]string{h: {"a", "b"}}) },
			wantPulls: map[string][]string{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := Decide(tc.ref, tc.view, Holdings{Owners: tc.owners(tc.view), Elsewhere: tc.elsewhere})
			if got, want := pullsOf(p), tc.wantPulls; !maps.EqualFunc(got, want, slices.Equal) {
				t.Errorf("pulls %v, want %v", got, want)
			}
			if p.Referenced != len(tc.ref) || p.UnderReplicated != tc.wantUnder || p.Missing != tc.wantMiss {
				t.Errorf("referenced %d, under-replicated %d, missing %d; want %d, %d, %d",
					p.Referenced, p.UnderReplicated, p.Missing, len(tc.ref), tc.wantUnder, tc.wantMiss)
			}
			if got, want := slices.Sorted(maps.Keys(p.NotUploaded)), tc.wantNotUp; !slices.Equal(got, want) {
				t.Errorf("not uploaded %v, want %v", got, want)
			}
		})
	}
}

// Pulls are grouped per owner, in hash order, and an owner is asked only
// for the blobs it owns.
func TestDecideGroupsPullsPerOwner(t *testing.T) {
	view := placement.New(cores("a", "b", "c", "d"), 2)
	ref := map[string]bool{}
	for i := range 40 {
		ref[hashN(i)] = false
	}
	p := Decide(ref, view, Holdings{Owners: holding(view, nil)})
	total := 0
	for _, pl := range p.Pulls {
		if !slices.IsSorted(pl.Hashes) {
			t.Errorf("%s pulls %v, want hash order", pl.Node.ID, pl.Hashes)
		}
		for _, h := range pl.Hashes {
			if !view.Owns(pl.Node.ID, h) {
				t.Errorf("%s is asked to pull %s, which it does not own", pl.Node.ID, h[:8])
			}
		}
		total += len(pl.Hashes)
	}
	if want := 40 * 2; total != want {
		t.Errorf("%d pulls, want %d (every blob on both its owners)", total, want)
	}
}

// TestHandOff: the local pass confirms what every owner holds and pushes
// the rest to the owners that lack it.
func TestHandOff(t *testing.T) {
	view := placement.New(cores("a", "b", "c"), 2)
	h := hashN(3)
	first, second := ownersOf(view, h)[0], ownersOf(view, h)[1]
	tests := []struct {
		name          string
		owners        map[string]Answer
		wantConfirmed bool
		wantTo        []string
	}{
		{"every owner holds it", holding(view, map[string][]string{h: {first, second}}), true, nil},
		{"one owner lacks it", holding(view, map[string][]string{h: {second}}), false, []string{first}},
		{"no owner holds it", holding(view, nil), false, []string{first, second}},
		{"owner unreachable", holding(view, map[string][]string{h: {first}}, second), false, []string{second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			confirmed, pushes := handOff([]string{h}, view, tc.owners)
			if got := slices.Contains(confirmed, h); got != tc.wantConfirmed {
				t.Errorf("confirmed %v, want %v", got, tc.wantConfirmed)
			}
			var to []string
			for _, p := range pushes {
				for _, o := range p.To {
					to = append(to, o.ID)
				}
			}
			if !slices.Equal(to, tc.wantTo) {
				t.Errorf("pushed to %v, want %v", to, tc.wantTo)
			}
		})
	}
}
