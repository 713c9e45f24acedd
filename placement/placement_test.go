package placement_test

import (
	"fmt"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/placement"
)

func coreNodes(ids ...string) []atoll.Node {
	out := make([]atoll.Node, len(ids))
	for i, id := range ids {
		out[i] = atoll.Node{ID: id, Role: atoll.RoleCore, State: atoll.NodeActive}
	}
	return out
}

func blobHash(i int) string { return fmt.Sprintf("%064x", i*7919+1) }

func TestPlacementOwners(t *testing.T) {
	nodes := append(coreNodes("a", "b", "c", "d"),
		atoll.Node{ID: "e", Role: atoll.RoleEdge, State: atoll.NodeActive},
		atoll.Node{ID: "f", Role: atoll.RoleCore, State: atoll.NodeDraining})
	tests := []struct {
		name       string
		replicas   int
		wantR      int
		wantQuorum int
	}{
		{"R=3 of 4 cores", 3, 3, 2},
		{"R capped at cores", 9, 4, 3},
		{"R=1", 1, 1, 1},
		{"R=0 means 1", 0, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := placement.New(nodes, tc.replicas)
			if got := p.Quorum(); got != tc.wantQuorum {
				t.Errorf("quorum = %d, want %d", got, tc.wantQuorum)
			}
			for i := range 200 {
				owners := p.Owners(blobHash(i))
				if len(owners) != tc.wantR {
					t.Fatalf("owners of blob %d: %d nodes, want %d", i, len(owners), tc.wantR)
				}
				seen := map[string]bool{}
				for _, o := range owners {
					if o.Role != atoll.RoleCore || o.State != atoll.NodeActive {
						t.Errorf("owner %+v is not an active core node", o)
					}
					if seen[o.ID] {
						t.Errorf("owner %s listed twice", o.ID)
					}
					seen[o.ID] = true
				}
			}
		})
	}
}

// Every node computes the same owners whatever the order of its node
// table, load spreads evenly, and adding a node moves only the blobs it
// takes over.
func TestPlacementStableAndBalanced(t *testing.T) {
	p1 := placement.New(coreNodes("n1", "n2", "n3", "n4"), 2)
	p2 := placement.New(coreNodes("n4", "n3", "n2", "n1"), 2)
	grown := placement.New(coreNodes("n1", "n2", "n3", "n4", "n5"), 2)
	const blobs = 4000
	count := map[string]int{}
	moved := 0
	for i := range blobs {
		h := blobHash(i)
		a, b := p1.Owners(h), p2.Owners(h)
		for j := range a {
			if a[j].ID != b[j].ID {
				t.Fatalf("blob %d: owners differ with node order: %v vs %v", i, a, b)
			}
			count[a[j].ID]++
		}
		g := grown.Owners(h)
		for _, o := range g {
			if o.ID == "n5" {
				continue
			}
			if !p1.Owns(o.ID, h) {
				t.Fatalf("blob %d: adding n5 gave it to %s, which did not own it before", i, o.ID)
			}
		}
		if g[0].ID == "n5" || g[1].ID == "n5" {
			moved++
		}
	}
	for id, c := range count {
		if want := blobs * 2 / 4; c < want*8/10 || c > want*12/10 {
			t.Errorf("node %s owns %d blob copies, want about %d", id, c, want)
		}
	}
	if want := blobs * 2 / 5; moved < want*8/10 || moved > want*12/10 {
		t.Errorf("adding a 5th node moved %d blobs to it, want about %d", moved, want)
	}
}

func TestPlacementSources(t *testing.T) {
	nodes := append(coreNodes("a", "b", "c"), atoll.Node{ID: "e", Role: atoll.RoleEdge, State: atoll.NodeActive},
		atoll.Node{ID: "d", Role: atoll.RoleCore, State: atoll.NodeDraining})
	p := placement.New(nodes, 2)
	h := blobHash(1)
	owners := p.Owners(h)
	src := p.Sources(h, owners[0].ID)
	if len(src) != 4 {
		t.Fatalf("sources = %v, want the other owner, then the 3 non-owners", src)
	}
	if src[0].ID != owners[1].ID {
		t.Errorf("first source %s, want the second owner %s", src[0].ID, owners[1].ID)
	}
	for _, n := range src {
		if n.ID == owners[0].ID {
			t.Errorf("sources include self")
		}
	}
}
