// Package nodetest runs in-process Atoll clusters for tests: N core and M
// edge nodes on loopback, each with its own data dir, joined the way
// `atoll server --join` joins them, with helpers to find the leader, kill
// and restart nodes and wait for the cluster to settle.
//
// Kill closes a node without handing leadership over, which the rest of
// the cluster sees as a crash; tests that need a real SIGKILL run the
// binary (cmd/atoll's end-to-end tests).
package nodetest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/builder/client"
	"github.com/atoll-hosting/atoll/node"
)

// Key and Token are the cluster key and admin token of every test cluster.
const (
	Key   = "test-cluster-key"
	Token = "test-admin-token"
)

// Cluster is a running test cluster.
type Cluster struct {
	t       testing.TB
	Members []*Member
}

// Member is one node of a Cluster. Node is nil while it is killed.
type Member struct {
	Cfg  node.Config
	Node *node.Node
}

// Option adjusts every member's config before it starts. cfg.ID is set
// already, so an option can give each member its own settings (WithTLS
// gives each its certificate).
type Option func(*node.Config)

// New starts cores core nodes (the first bootstraps, the others join it)
// and edges edge nodes, and waits until every node is ready. The cluster is
// closed when the test ends.
func New(t testing.TB, cores, edges int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	// The test's temp dir is made (and its removal registered) before
	// Close is: cleanups run last first, so the nodes stop before their
	// data dirs are removed.
	base := t.TempDir()
	t.Cleanup(c.Close)
	for i := range cores + edges {
		cfg := node.DefaultConfig()
		cfg.ID = fmt.Sprintf("core%d", i+1)
		cfg.Role = atoll.RoleCore
		if i >= cores {
			cfg.ID = fmt.Sprintf("edge%d", i-cores+1)
			cfg.Role = atoll.RoleEdge
		}
		cfg.DataDir = filepath.Join(base, cfg.ID)
		cfg.RaftAddr, cfg.APIAddr, cfg.HTTPAddr = FreeAddr(t), FreeAddr(t), FreeAddr(t)
		cfg.ClusterKey = Key
		cfg.AdminToken = Token
		cfg.RaftTimeout = 500 * time.Millisecond
		cfg.FetchTimeout = time.Second
		cfg.ACME = false // no test reaches a real CA
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = "http://" + c.Members[0].Cfg.APIAddr
		}
		if os.Getenv("ATOLL_TEST_LOG") != "" {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", cfg.ID)
		}
		for _, o := range opts {
			o(&cfg)
		}
		m := &Member{Cfg: cfg}
		c.Members = append(c.Members, m)
		c.start(m)
	}
	c.WaitReady()
	return c
}

func (c *Cluster) start(m *Member) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := node.Start(ctx, m.Cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", m.Cfg.ID, err)
	}
	m.Node = n
}

// FreeAddr returns a free loopback address below the ephemeral port
// range, never the same twice in this process (atolltest.FreeAddr).
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := atolltest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// Close stops every running member.
func (c *Cluster) Close() {
	for _, m := range c.Members {
		if m.Node != nil {
			m.Node.Close()
			m.Node = nil
		}
	}
}

// Member returns the member with the given id.
func (c *Cluster) Member(id string) *Member {
	c.t.Helper()
	for _, m := range c.Members {
		if m.Cfg.ID == id {
			return m
		}
	}
	c.t.Fatalf("no member %q", id)
	return nil
}

// Running returns the members that are up.
func (c *Cluster) Running() []*Member {
	var out []*Member
	for _, m := range c.Members {
		if m.Node != nil {
			out = append(out, m)
		}
	}
	return out
}

// Leader waits up to 10 s for a running member to lead and returns it.
func (c *Cluster) Leader() *Member {
	c.t.Helper()
	var m *Member
	c.Eventually(10*time.Second, "a leader", func() bool {
		for _, r := range c.Running() {
			if r.Node.Store().IsLeader() {
				m = r
				return true
			}
		}
		return false
	})
	return m
}

// Followers returns the running members other than the leader, in order.
func (c *Cluster) Followers() []*Member {
	leader := c.Leader()
	var out []*Member
	for _, m := range c.Running() {
		if m != leader {
			out = append(out, m)
		}
	}
	return out
}

// Kill stops a member abruptly (no leadership hand-over).
func (c *Cluster) Kill(m *Member) {
	c.t.Helper()
	if m.Node == nil {
		c.t.Fatalf("kill %s: not running", m.Cfg.ID)
	}
	m.Node.Close()
	m.Node = nil
}

// Restart starts a killed member again on the same data dir and addresses.
func (c *Cluster) Restart(m *Member) {
	c.t.Helper()
	cfg := m.Cfg
	cfg.Bootstrap, cfg.Join = false, ""
	m.Cfg = cfg
	c.start(m)
}

// WaitReady waits until every running member has a leader, is in the node
// table and has applied what the leader committed.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	c.Eventually(30*time.Second, "every node ready", func() bool {
		leader := -1
		var commit uint64
		for i, m := range c.Members {
			if m.Node != nil && m.Node.Store().IsLeader() {
				leader, commit = i, m.Node.Store().CommitIndex()
			}
		}
		if leader < 0 {
			return false
		}
		for _, m := range c.Running() {
			if m.Node.Store().AppliedIndex() < commit || !m.Node.InNodeTable() {
				return false
			}
		}
		return true
	})
}

// Client returns an admin API client talking to m (trusting the cluster
// CA when the cluster runs on TLS).
func (c *Cluster) Client(m *Member) *client.Client {
	cl := client.New(m.Node.APIURL(), Token)
	if m.Cfg.TLSCA != "" {
		ca, err := os.ReadFile(m.Cfg.TLSCA)
		if err == nil {
			err = cl.TrustCA(ca)
		}
		if err != nil {
			c.t.Fatalf("client of %s: %v", m.Cfg.ID, err)
		}
	}
	return cl
}

// Eventually polls cond every 20 ms until it holds or d passes.
func (c *Cluster) Eventually(d time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
