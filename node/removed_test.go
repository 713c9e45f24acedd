package node

import (
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/raft"
)

// TestRemovedFrom walks a node through joining, membership and the two
// steps of its removal, as the states it reads may come.
func TestRemovedFrom(t *testing.T) {
	self := atoll.Node{ID: "n1", State: atoll.NodeActive}
	other := atoll.Node{ID: "n2", State: atoll.NodeActive}
	gone := self
	gone.State = atoll.NodeRemoved
	cfgWith := []raft.Server{{ID: "n1"}, {ID: "n2"}}
	cfgWithout := []raft.Server{{ID: "n2"}}
	steps := []struct {
		name    string
		servers []raft.Server
		table   []atoll.Node
		want    bool
	}{
		{"fresh, waiting to join", nil, nil, false},
		{"added to raft, not yet in the table", cfgWith, []atoll.Node{other}, false},
		{"member", cfgWith, []atoll.Node{self, other}, false},
		{"out of raft, still in the table", cfgWithout, []atoll.Node{self, other}, true},
		{"out of both", cfgWithout, []atoll.Node{other}, true},
		{"added again", cfgWith, []atoll.Node{self, other}, false},
		{"marked removed in the table", cfgWith, []atoll.Node{gone, other}, true},
	}
	var seen membershipSeen
	for _, s := range steps {
		if got := removedFrom(&seen, "n1", s.servers, s.table); got != s.want {
			t.Errorf("%s: removed = %v, want %v", s.name, got, s.want)
		}
	}
	// A restart of a node that heard only of the first step.
	var fresh membershipSeen
	if !removedFrom(&fresh, "n1", cfgWithout, []atoll.Node{self, other}) {
		t.Error("restarted after leaving raft: not removed, want removed")
	}
}
