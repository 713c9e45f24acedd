package node

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/atoll-hosting/atoll"
)

// assignTable builds a node table: cores c1..c3 (c1 leads), then the given
// edges.
func assignTable(edges ...atoll.Node) []atoll.Node {
	out := []atoll.Node{
		{ID: "c1", Role: atoll.RoleCore, APIAddr: "10.0.0.1:9090", State: atoll.NodeActive},
		{ID: "c2", Role: atoll.RoleCore, APIAddr: "10.0.0.2:9090", State: atoll.NodeActive},
		{ID: "c3", Role: atoll.RoleCore, APIAddr: "10.0.0.3:9090", State: atoll.NodeActive},
	}
	for _, e := range edges {
		e.Role, e.APIAddr = atoll.RoleEdge, "10.0.1.1:9090"
		if e.State == "" {
			e.State = atoll.NodeActive
		}
		out = append(out, e)
	}
	return out
}

func ids(nodes []atoll.Node) []string {
	var out []string
	for _, nd := range nodes {
		out = append(out, nd.ID)
	}
	return out
}

// TestPlanFeed: the leader keeps maxDirect edges as Raft non-voters, then
// sends each new edge to the relay that feeds the fewest (ties by id),
// draining and removed relays and fed edges never; cores come after the
// relays, the leader last.
func TestPlanFeed(t *testing.T) {
	for _, tt := range []struct {
		name      string
		table     []atoll.Node
		maxDirect int
		want      []string // nil: direct
	}{
		{"no edge yet", assignTable(), 2, nil},
		{"below K", assignTable(atoll.Node{ID: "r1"}), 2, nil},
		{"a draining relay still counts against K", assignTable(atoll.Node{ID: "r1"}, atoll.Node{ID: "r2", State: atoll.NodeDraining}), 2,
			[]string{"r1", "c2", "c3", "c1"}},
		{"at K: the relays, ties by id, then the cores with the leader last", assignTable(atoll.Node{ID: "r2"}, atoll.Node{ID: "r1"}), 2,
			[]string{"r1", "r2", "c2", "c3", "c1"}},
		{"fewest fed edges first", assignTable(atoll.Node{ID: "r1"}, atoll.Node{ID: "r2"},
			atoll.Node{ID: "f1", Feeder: "r1"}, atoll.Node{ID: "f2", Feeder: "r1"}, atoll.Node{ID: "f3", Feeder: "r2"}), 2,
			[]string{"r2", "r1", "c2", "c3", "c1"}},
		{"cores by their fed edges too", assignTable(atoll.Node{ID: "f1", Feeder: "c2"}), 0,
			[]string{"c3", "c2", "c1"}},
		{"K = 0: every edge is fed", assignTable(), 0, []string{"c2", "c3", "c1"}},
		{"removed nodes and the edge itself are left out", assignTable(atoll.Node{ID: "r1"}, atoll.Node{ID: "r2", State: atoll.NodeRemoved},
			atoll.Node{ID: "new", Feeder: "r1"}, atoll.Node{ID: "f1", Feeder: "r1", State: atoll.NodeRemoved}), 1,
			[]string{"r1", "c2", "c3", "c1"}},
		{"a fed edge never feeds", assignTable(atoll.Node{ID: "r1"}, atoll.Node{ID: "f1", Feeder: "r1"}), 1,
			[]string{"r1", "c2", "c3", "c1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			plan := planFeed(tt.table, "new", tt.maxDirect, "c1")
			if got, want := plan.Direct, tt.want == nil; got != want {
				t.Fatalf("direct = %v, want %v (feeders %v)", got, want, ids(plan.Feeders))
			}
			if got := ids(plan.Feeders); !slices.Equal(got, tt.want) {
				t.Errorf("feeders = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPlanFeedSpreads: edges joining one after another, each recorded
// before the next decides, end up spread over the relays.
func TestPlanFeedSpreads(t *testing.T) {
	table := assignTable(atoll.Node{ID: "r1"}, atoll.Node{ID: "r2"}, atoll.Node{ID: "r3"})
	for i := range 10 {
		id := string(rune('a' + i))
		plan := planFeed(table, id, 3, "c1")
		if plan.Direct {
			t.Fatalf("edge %s direct with 3 direct edges and K = 3", id)
		}
		table = append(table, atoll.Node{ID: id, Role: atoll.RoleEdge, State: atoll.NodeActive, Feeder: plan.Feeders[0].ID})
	}
	fed := map[string]int{}
	for _, nd := range table {
		if nd.Feeder != "" {
			fed[nd.Feeder]++
		}
	}
	if got, want := fed, map[string]int{"r1": 4, "r2": 3, "r3": 3}; !maps.Equal(got, want) {
		t.Errorf("fed edges per relay = %v, want %v", got, want)
	}
}

// TestPickFeeder: a candidate that does not answer is passed over.
func TestPickFeeder(t *testing.T) {
	candidates := assignTable(atoll.Node{ID: "r1"}, atoll.Node{ID: "r2"})[3:]
	for _, tt := range []struct {
		name string
		down []string
		want string
	}{
		{"the first answers", nil, "r1"},
		{"the first is down", []string{"r1"}, "r2"},
		{"all down", []string{"r1", "r2"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := func(_ context.Context, nd atoll.Node) bool { return !slices.Contains(tt.down, nd.ID) }
			got, ok := pickFeeder(t.Context(), candidates, up)
			if ok != (tt.want != "") || got.ID != tt.want {
				t.Errorf("pickFeeder = %q, %v; want %q", got.ID, ok, tt.want)
			}
		})
	}
}

// TestMaxDirectEdgesConfig: --max-direct-edges may be 0, never negative.
func TestMaxDirectEdgesConfig(t *testing.T) {
	for _, tt := range []struct {
		k  int
		ok bool
	}{{0, true}, {32, true}, {-1, false}} {
		c := DefaultConfig()
		c.MaxDirectEdges = tt.k
		if err := c.validate(1024); (err == nil) != tt.ok {
			t.Errorf("--max-direct-edges %d: validate = %v, want ok %v", tt.k, err, tt.ok)
		}
	}
}
