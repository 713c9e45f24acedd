package raft

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// cluster is an in-process cluster of Stores on loopback TCP, with test
// timings. Nodes are named n1, n2, ...; n1 bootstraps.
type cluster struct {
	t     *testing.T
	cfgs  map[string]Config
	nodes map[string]*Store // nil while killed
}

func newCluster(t *testing.T, voters int, tweak func(*Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, cfgs: map[string]Config{}, nodes: map[string]*Store{}}
	for i := 1; i <= voters; i++ {
		id := fmt.Sprintf("n%d", i)
		cfg := clusterConfig(t, id)
		cfg.Bootstrap = i == 1
		if tweak != nil {
			tweak(&cfg)
		}
		c.start(id, cfg)
		if i == 1 {
			waitLeader(t, c.nodes[id])
			continue
		}
		if err := c.leader().AddVoter(ctxT(t, 10*time.Second), id, c.nodes[id].Addr()); err != nil {
			t.Fatalf("AddVoter %s: %v", id, err)
		}
	}
	return c
}

// clusterConfig is testConfig with timings that survive a loaded machine:
// with the race detector on two cores, next to other packages' tests, a
// 100 ms lease expires now and then and leadership moves mid-test.
func clusterConfig(t *testing.T, id string) Config {
	cfg := testConfig(t, id, t.TempDir())
	cfg.HeartbeatTimeout = 300 * time.Millisecond
	cfg.ElectionTimeout = 300 * time.Millisecond
	cfg.LeaderLeaseTimeout = 300 * time.Millisecond
	return cfg
}

// apply applies cmds on whichever node leads, resending a command whose
// outcome leadership loss left unknown, as a proposer must (commands are
// idempotent for that reason). A resent command that the FSM then rejects
// (DeleteSite answers ErrNotFound once the first attempt went through) is
// taken as applied; the test's state checks judge the result.
func (c *cluster) apply(cmds ...Command) {
	c.t.Helper()
	for _, cmd := range cmds {
		deadline := time.Now().Add(20 * time.Second)
		for resent := false; ; resent = true {
			err := c.leader().Apply(ctxT(c.t, 10*time.Second), cmd)
			if err == nil || resent && isRejection(err) {
				break
			}
			if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
				c.t.Fatalf("Apply %T: %v", cmd, err)
			}
			c.t.Logf("Apply %T: %v; resending to the leader", cmd, err)
		}
	}
}

func (c *cluster) start(id string, cfg Config) *Store {
	c.t.Helper()
	s := openStore(c.t, cfg)
	// Restarts must come back on the same address: the configuration has it.
	cfg.BindAddr = s.Addr()
	c.cfgs[id], c.nodes[id] = cfg, s
	return s
}

// addEdge starts a fresh node and adds it as a non-voter.
func (c *cluster) addEdge(id string) *Store {
	c.t.Helper()
	s := c.start(id, clusterConfig(c.t, id))
	if err := c.leader().AddNonvoter(ctxT(c.t, 10*time.Second), id, s.Addr()); err != nil {
		c.t.Fatalf("AddNonvoter %s: %v", id, err)
	}
	return s
}

// leader waits until exactly one live node leads and returns it.
func (c *cluster) leader() *Store {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var leaders []*Store
		for _, s := range c.nodes {
			if s != nil && s.IsLeader() {
				leaders = append(leaders, s)
			}
		}
		if len(leaders) == 1 {
			return leaders[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatal("no single leader within 10s")
	return nil
}

func (c *cluster) followers() []*Store {
	var out []*Store
	for _, id := range slices.Sorted(maps.Keys(c.nodes)) {
		if s := c.nodes[id]; s != nil && !s.IsLeader() {
			out = append(out, s)
		}
	}
	return out
}

// kill stops a node abruptly (no leadership transfer).
func (c *cluster) kill(id string) {
	c.t.Helper()
	if err := c.nodes[id].Close(); err != nil {
		c.t.Fatalf("close %s: %v", id, err)
	}
	c.nodes[id] = nil
}

func (c *cluster) restart(id string) *Store {
	c.t.Helper()
	cfg := c.cfgs[id]
	cfg.Bootstrap = false
	return c.start(id, cfg)
}

// converged waits until every live node has applied the leader's commit
// index and holds the same state.
func (c *cluster) converged() string {
	c.t.Helper()
	l := c.leader()
	want := dump(c.t, l.FSM)
	target := l.CommitIndex()
	for id, s := range c.nodes {
		if s == nil || s == l {
			continue
		}
		if err := s.WaitApplied(ctxT(c.t, 10*time.Second), target); err != nil {
			c.t.Fatalf("%s did not reach index %d (at %d): %v", id, target, s.AppliedIndex(), err)
		}
		if got := dump(c.t, s.FSM); got != want {
			c.t.Fatalf("%s diverges from leader %s:\nleader %s\n%s     %s", id, l.ID(), want, id, got)
		}
	}
	return want
}

func TestCluster(t *testing.T) {
	c := newCluster(t, 3, func(cfg *Config) {
		// Compact hard, so that a late joiner needs a snapshot.
		cfg.TrailingLogs = 4
		cfg.SnapshotThreshold = 16
	})
	l := c.leader()
	servers, err := l.Servers()
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 3 || !servers[0].Voter || !servers[1].Voter || !servers[2].Voter {
		t.Fatalf("Servers = %+v, want 3 voters", servers)
	}

	c.apply(seedCommands()...)
	c.converged()
	l = c.leader()
	for _, f := range c.followers() {
		if f.LeaderID() != l.ID() {
			t.Errorf("%s sees leader %q, want %q", f.ID(), f.LeaderID(), l.ID())
		}
		err := f.Apply(ctxT(t, time.Second), DeleteSite{Name: "blog"})
		if !errors.Is(err, ErrNotLeader) {
			t.Errorf("Apply on follower %s = %v, want ErrNotLeader", f.ID(), err)
		}
		if err := f.AddVoter(ctxT(t, time.Second), "x", "127.0.0.1:1"); !errors.Is(err, ErrNotLeader) {
			t.Errorf("AddVoter on follower = %v, want ErrNotLeader", err)
		}
	}

	t.Run("edge joins from a snapshot", func(t *testing.T) {
		if err := c.leader().Snapshot(); err != nil {
			t.Fatal(err)
		}
		c.apply(CreateSite{Name: "after-snap", Created: t0})
		edge := c.addEdge("e1")
		c.converged()
		// The log it needed was compacted away: it got the state as a snapshot.
		if snaps, err := os.ReadDir(filepath.Join(c.cfgs["e1"].Dir, "snapshots")); err != nil || len(snaps) == 0 {
			t.Errorf("edge holds no snapshot (%v): it should have been sent one", err)
		}
		if edge.IsLeader() || edge.State() != "Follower" {
			t.Errorf("edge state %s", edge.State())
		}
		// Its counts are the restored state's, and its RestoredAt marks
		// the restore until an entry applies after it (node's membership
		// check waits for that before it trusts the configuration).
		checkCounts(t, edge.FSM, "edge after installing a snapshot")
		at := edge.RestoredAt()
		if at == 0 || at > edge.AppliedIndex() {
			t.Errorf("edge RestoredAt %d, applied %d: want the restore's index", at, edge.AppliedIndex())
		}
		c.apply(CreateSite{Name: "after-join", Created: t0})
		c.converged()
		if edge.RestoredAt() != at || edge.AppliedIndex() <= at {
			t.Errorf("after one more entry: RestoredAt %d (was %d), applied %d", edge.RestoredAt(), at, edge.AppliedIndex())
		}
		checkCounts(t, edge.FSM, "edge after one more entry")
		servers, _ := c.leader().Servers()
		if len(servers) != 4 || servers[3].ID != "e1" || servers[3].Voter {
			t.Errorf("Servers = %+v, want e1 as non-voter", servers)
		}
		if err := c.leader().RemoveServer(ctxT(t, 10*time.Second), "e1"); err != nil {
			t.Fatal(err)
		}
		c.kill("e1")
		delete(c.nodes, "e1")
	})

	t.Run("leader killed", func(t *testing.T) {
		old := c.leader()
		oldID := old.ID()
		c.kill(oldID)
		nl := c.leader()
		if nl.ID() == oldID {
			t.Fatal("killed node still leads")
		}
		t.Logf("new leader %s after killing %s", nl.ID(), oldID)
		c.apply(Publish{Deploy: "rdy1", At: t0.Add(time.Hour)}, DeleteSite{Name: "shop"})
		c.converged()

		c.restart(oldID)
		state := c.converged()
		if !strings.Contains(state, "Published:rdy1") {
			t.Errorf("restarted node's state lacks the publish:\n%s", state)
		}
	})

	t.Run("leadership transfer", func(t *testing.T) {
		old := c.leader()
		if err := old.LeadershipTransfer(); err != nil {
			t.Fatal(err)
		}
		nl := c.leader()
		if nl == old {
			t.Fatal("leadership did not move")
		}
		c.apply(CreateSite{Name: "moved", Created: t0})
		c.converged()
	})
}
