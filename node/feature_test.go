package node

import (
	"slices"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/raft"
)

// TestBinaryCensus decides the level a cluster may rise to, and who holds
// it back, from what its members report.
func TestBinaryCensus(t *testing.T) {
	node := func(id, role string) atoll.Node {
		return atoll.Node{ID: id, Role: role, APIAddr: id + ":9090", State: atoll.NodeActive}
	}
	removed := node("core-9", atoll.RoleCore)
	removed.State = atoll.NodeRemoved
	table := []atoll.Node{node("core-1", atoll.RoleCore), node("core-2", atoll.RoleCore), node("edge-1", atoll.RoleEdge), removed}
	servers := []raft.Server{{ID: "core-1", Voter: true}, {ID: "core-2", Voter: true}, {ID: "edge-1"}}
	current := peer.Stats{RaftState: "Follower", Version: "0.11.0+abc", FeatureLevel: atoll.MaxFeatureLevel}
	old := peer.Stats{RaftState: "Follower"} // a binary from before feature levels
	tests := []struct {
		name    string
		servers []raft.Server
		stats   map[string]peer.Stats
		level   int
		heldBy  []string
	}{
		{"every node current", servers,
			map[string]peer.Stats{"core-1": current, "core-2": current, "edge-1": current}, atoll.MaxFeatureLevel, nil},
		{"an old edge", servers,
			map[string]peer.Stats{"core-1": current, "core-2": current, "edge-1": old}, atoll.LevelBase,
			[]string{"edge-1 (version unknown, level 1)"}},
		{"an unreachable core", servers,
			map[string]peer.Stats{"core-1": current, "core-2": {RaftState: unreachable}, "edge-1": current}, 0,
			[]string{"core-2 (unreachable)"}},
		{"a core not asked", servers,
			map[string]peer.Stats{"core-1": current, "edge-1": current}, 0,
			[]string{"core-2 (unreachable)"}},
		{"in raft, not yet in the table", append(slices.Clone(servers), raft.Server{ID: "core-3", Voter: true}),
			map[string]peer.Stats{"core-1": current, "core-2": current, "edge-1": current}, 0,
			[]string{"core-3 (not in the node table yet)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, byID := clusterMembers(tt.servers, table)
			if slices.Contains(ids, removed.ID) {
				t.Errorf("members %v include the removed node", ids)
			}
			c := censusOf(ids, byID, tt.stats, time.Now())
			if got := c.level(); got != tt.level {
				t.Errorf("level = %d, want %d", got, tt.level)
			}
			if got := c.heldBy(atoll.MaxFeatureLevel); !slices.Equal(got, tt.heldBy) {
				t.Errorf("heldBy = %q, want %q", got, tt.heldBy)
			}
		})
	}
}
