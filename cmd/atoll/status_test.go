package main

import (
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
)

func TestDiagnose(t *testing.T) {
	census := &atoll.RepairReport{At: time.Now(), Referenced: 10}
	node := func(id, state string, applied uint64, lag int64) atoll.NodeStatus {
		return atoll.NodeStatus{Node: atoll.Node{ID: id, APIAddr: id + ":9090"}, RaftState: state, AppliedIndex: applied, Lag: lag}
	}
	status := func(commit uint64, repair *atoll.RepairReport, nodes ...atoll.NodeStatus) *atoll.Status {
		return &atoll.Status{ID: "n1", LeaderID: "n1", LeaderCommit: commit, Replicas: 3, Repair: repair, Nodes: nodes}
	}
	well := status(100, census, node("n1", "Leader", 100, 0), node("n2", "Follower", 98, 2))
	tests := []struct {
		name       string
		st, before *atoll.Status
		want       []string // a substring of each problem, in order
	}{
		{"all well", well, nil, nil},
		{"no census yet", status(100, nil, node("n1", "Leader", 100, 0)), nil, []string{"no repair census yet"}},
		{"census found trouble", status(100, &atoll.RepairReport{At: time.Now(), UnderReplicated: 3, Missing: 1}, node("n1", "Leader", 100, 0)), nil,
			[]string{"3 blobs had fewer than 3 copies", "1 blobs were on no node"}},
		{"no leader", &atoll.Status{ID: "n2", Repair: census, Nodes: []atoll.NodeStatus{node("n2", "Candidate", 50, 0)}}, nil,
			[]string{"no leader known to n2", "node n2 is Candidate in Raft"}},
		{"unreachable, never seen", status(100, census, node("n1", "Leader", 100, 0), node("n3", "unreachable", 0, -1)), nil,
			[]string{"node n3 does not answer at n3:9090 (it has not answered"}},
		{"unreachable, seen behind", status(100, census, node("n1", "Leader", 100, 0), atoll.NodeStatus{Node: atoll.Node{ID: "n3", APIAddr: "n3:9090"}, RaftState: "unreachable", AppliedIndex: 61, Lag: 39, LastSeen: "4s"}), nil,
			[]string{"node n3 does not answer at n3:9090 (last answered 4s ago at applied index 61: 39 entries behind the leader's commit index 100)"}},
		{"behind in both samples, stuck", status(140, census, node("n1", "Leader", 140, 0), node("n2", "Follower", 61, 79)),
			status(100, census, node("n1", "Leader", 100, 0), node("n2", "Follower", 61, 39)),
			[]string{"node n2 is 79 entries behind the leader's commit index 140 (applied 61"}},
		{"behind in both samples, keeping up", status(140, census, node("n1", "Leader", 140, 0), node("n2", "Follower", 120, 20)),
			status(100, census, node("n1", "Leader", 100, 0), node("n2", "Follower", 61, 39)), nil},
		{"behind only now", status(140, census, node("n1", "Leader", 140, 0), node("n2", "Follower", 100, 40)),
			status(100, census, node("n1", "Leader", 100, 0), node("n2", "Follower", 100, 0)), nil},
		{"state machine stopped", status(100, census, node("n1", "Leader", 100, 0),
			atoll.NodeStatus{Node: atoll.Node{ID: "n2"}, RaftState: "Follower", AppliedIndex: 90, Stopped: "needs a newer binary: log entry 91"}), nil,
			[]string{"node n2 stopped applying the replicated state: needs a newer binary: log entry 91"}},
		{"mixed versions are no problem", status(100, census,
			atoll.NodeStatus{Node: atoll.Node{ID: "n1"}, RaftState: "Leader", AppliedIndex: 100, Version: "0.11.0", FeatureLevel: 2},
			atoll.NodeStatus{Node: atoll.Node{ID: "n2"}, RaftState: "Follower", AppliedIndex: 100, FeatureLevel: 1}), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diagnose(tt.st, tt.before, 10)
			if len(got) != len(tt.want) {
				t.Fatalf("diagnose: got %d problems %q, want %d like %q", len(got), got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d: got %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestVersionNotes(t *testing.T) {
	node := func(id, version string, level int) atoll.NodeStatus {
		return atoll.NodeStatus{Node: atoll.Node{ID: id}, RaftState: "Follower", Version: version, FeatureLevel: level}
	}
	tests := []struct {
		name string
		st   atoll.Status
		want []string
	}{
		{"one version", atoll.Status{FeatureLevel: 2, Nodes: []atoll.NodeStatus{node("a", "0.11.0", 2), node("b", "0.11.0", 2)}}, nil},
		{"an upgrade in progress", atoll.Status{FeatureLevel: 1, FeatureHeldBy: []string{"c (version unknown, level 1)"},
			Nodes: []atoll.NodeStatus{node("a", "0.11.0", 2), node("b", "0.11.0", 2), node("c", "", 1),
				{Node: atoll.Node{ID: "d"}, RaftState: "unreachable"}}},
			[]string{"nodes run different versions: 0.11.0 on a, b; version unknown on c",
				"the feature level stays at 1 until these nodes run a newer atoll: c (version unknown, level 1)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := versionNotes(&tt.st)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("versionNotes:\ngot  %q\nwant %q", got, tt.want)
			}
		})
	}
}
