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
		if got := removedFrom(&seen, "n1", s.servers, true, s.table); got != s.want {
			t.Errorf("%s: removed = %v, want %v", s.name, got, s.want)
		}
	}
	// A restart of a node that heard only of the first step.
	var fresh membershipSeen
	if !removedFrom(&fresh, "n1", cfgWithout, true, []atoll.Node{self, other}) {
		t.Error("restarted after leaving raft: not removed, want removed")
	}
}

// TestRemovedFromAfterSnapshotInstall is the new edge that installed a
// snapshot and declared itself removed: it had restored an earlier
// snapshot (from before its join: the configuration without it), then
// installed a newer one whose node table lists it. hashicorp/raft restores
// the FSM before it sets the new snapshot's configuration, so for a moment
// the node reads the new table with the old configuration. Until an entry
// is applied after the restore (settled false) it decides from the table
// alone: a member, not removed; once settled, from both.
func TestRemovedFromAfterSnapshotInstall(t *testing.T) {
	self := atoll.Node{ID: "n1", State: atoll.NodeActive}
	other := atoll.Node{ID: "n2", State: atoll.NodeActive}
	cfgWith := []raft.Server{{ID: "n1"}, {ID: "n2"}}
	cfgWithout := []raft.Server{{ID: "n2"}}
	var seen membershipSeen
	if removedFrom(&seen, "n1", cfgWithout, true, []atoll.Node{other}) {
		t.Fatal("first snapshot, from before the join: removed, want not")
	}
	if removedFrom(&seen, "n1", cfgWithout, false, []atoll.Node{self, other}) {
		t.Error("second snapshot's table with the first one's configuration, unsettled: removed, want not")
	}
	if removedFrom(&seen, "n1", cfgWith, true, []atoll.Node{self, other}) {
		t.Error("settled, in both: removed, want not")
	}
	// A table that marks it removed says so, settled or not.
	gone := self
	gone.State = atoll.NodeRemoved
	if !removedFrom(&seen, "n1", cfgWith, false, []atoll.Node{gone, other}) {
		t.Error("unsettled, marked removed in the table: not removed, want removed")
	}
}
