package node

import (
	"errors"
	"slices"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/placement"
)

// TestFeedFromConfig: --feed-from is for an edge with a cluster key that
// does not bootstrap.
func TestFeedFromConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"an edge with a cluster key", func(c *Config) {}, true},
		{"a core node", func(c *Config) { c.Role = atoll.RoleCore }, false},
		{"no cluster key", func(c *Config) { c.ClusterKey = "" }, false},
		{"bootstrapping", func(c *Config) { c.Bootstrap = true }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Role, c.ClusterKey, c.FeedFrom = atoll.RoleEdge, "k", "http://127.0.0.1:9090"
			tt.edit(&c)
			err := c.validate(1024)
			if got := err == nil; got != tt.ok {
				t.Fatalf("validate: %v, want ok %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrConfig) {
				t.Errorf("validate: %v, want ErrConfig", err)
			}
		})
	}
}

// TestFeedersOrder: a fed edge tries its --feed-from, then its recorded
// feeder, then the other Raft member edges, then the cores; never itself,
// another fed edge or a removed node.
func TestFeedersOrder(t *testing.T) {
	table := []atoll.Node{
		{ID: "core1", Role: atoll.RoleCore, APIAddr: "c1:1", State: atoll.NodeActive},
		{ID: "core2", Role: atoll.RoleCore, APIAddr: "c2:1", State: atoll.NodeActive},
		{ID: "relay1", Role: atoll.RoleEdge, APIAddr: "r1:1", State: atoll.NodeActive},
		{ID: "relay2", Role: atoll.RoleEdge, APIAddr: "r2:1", State: atoll.NodeActive},
		{ID: "relay3", Role: atoll.RoleEdge, APIAddr: "r3:1", State: atoll.NodeRemoved},
		{ID: "fed1", Role: atoll.RoleEdge, APIAddr: "f1:1", State: atoll.NodeActive, Feeder: "relay2"},
		{ID: "fed2", Role: atoll.RoleEdge, APIAddr: "f2:1", State: atoll.NodeActive, Feeder: "relay1"},
	}
	n := &Node{cfg: Config{ID: "fed1", FeedFrom: "http://given:1/"}}
	n.place.Store(placement.New(table, 2))
	got := n.feeders()
	if len(got) != 5 || got[0] != "http://given:1" || got[1] != "http://r2:1" || got[2] != "http://r1:1" ||
		!slices.Contains(got[3:], "http://c1:1") || !slices.Contains(got[3:], "http://c2:1") {
		t.Errorf("feeders %q: want --feed-from, the recorded relay2, relay1, then both cores", got)
	}
}

// TestFeedersOfAnAssignedEdge: a new edge the leader assigned knows no
// node table yet: it tries its assigned feeder, then its --join node.
func TestFeedersOfAnAssignedEdge(t *testing.T) {
	n := &Node{cfg: Config{ID: "fed1", Join: "http://core1:1/"}}
	n.feed.first = "http://relay1:1"
	n.place.Store(placement.New(nil, 2))
	if got, want := n.feeders(), []string{"http://relay1:1", "http://core1:1"}; !slices.Equal(got, want) {
		t.Errorf("feeders %q, want %q", got, want)
	}
}
