package main

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
)

const (
	clusterKey = "fanout-cluster-key-0123456789abcdef"
	adminToken = "atl_fanout_token_0123456789abcdef"
)

// cluster is the running cluster: its leader (the bootstrap node, checked)
// and every node, cores first.
type cluster struct {
	leader *atolltest.Node
	nodes  []*atolltest.Node
	edges  int
}

// apiClient is shared by every node's API calls.
var apiClient = &http.Client{Timeout: 2 * time.Minute}

// launch starts `atoll server` with id name and waits until it answers
// /healthz.
func launch(ctx context.Context, cfg config, name string, bootstrap bool, flags ...string) (*atolltest.Node, error) {
	dir := filepath.Join(cfg.workDir, "nodes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	n, err := atolltest.NewNode(atolltest.NodeConfig{
		Bin: cfg.atollBin, ID: name, Data: filepath.Join(dir, name), Bootstrap: bootstrap, AdminToken: adminToken,
		Flags:   append([]string{"--log-level", "warn", "--cluster-key", clusterKey, "--replicas", "3"}, flags...),
		LogPath: filepath.Join(dir, name+".log"), APIClient: apiClient,
	})
	if err != nil {
		return nil, err
	}
	if err := n.Launch(); err != nil {
		return nil, err
	}
	procs.Add(n)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := n.WaitReady(wctx, "/healthz"); err != nil {
		return nil, fmt.Errorf("node %s: %w (log %s)", name, err, n.LogPath)
	}
	return n, nil
}

// startCores starts core1 (bootstrap), core2 and core3, and checks that
// core1 leads.
func startCores(ctx context.Context, cfg config) (*cluster, error) {
	var flags []string
	if cfg.assign != nil {
		flags = []string{"--max-direct-edges", fmt.Sprint(*cfg.assign)}
	}
	n1, err := launch(ctx, cfg, "core1", true, flags...)
	if err != nil {
		return nil, err
	}
	c := &cluster{leader: n1, nodes: []*atolltest.Node{n1}}
	for _, name := range []string{"core2", "core3"} {
		n, err := launch(ctx, cfg, name, false, append([]string{"--join", n1.APIURL()}, flags...)...)
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	if err := c.waitMembers(ctx, 3); err != nil {
		return nil, err
	}
	var st atoll.Status
	if err := n1.Call(ctx, "GET", "/v1/status", nil, &st); err != nil {
		return nil, err
	}
	if st.LeaderID != n1.ID {
		return nil, fmt.Errorf("the leader is %q, not the bootstrap node %s", st.LeaderID, n1.ID)
	}
	return c, nil
}

// addEdges starts edges until the cluster has want, ten at a time, and
// waits until the node table lists them all. With cfg.relays, the first
// cfg.relays edges are Raft non-voters (the relays) and each later one
// follows one of them (--feed-from), in turn. With cfg.assign, every
// edge joins with --join alone, once the cluster is at the level of fed
// edges, and the leader decides.
func (c *cluster) addEdges(ctx context.Context, cfg config, want int) error {
	if cfg.assign != nil && c.edges == 0 {
		if err := c.waitLevel(ctx, atoll.LevelFedEdges); err != nil {
			return err
		}
	}
	for c.edges < want {
		batch := min(10, want-c.edges)
		if c.edges < cfg.relays {
			batch = min(batch, cfg.relays-c.edges) // relays up before their fed edges
		} else if c.edges == cfg.relays && cfg.relays > 0 {
			if err := c.waitLevel(ctx, atoll.LevelFedEdges); err != nil {
				return err
			}
		}
		started := make([]*atolltest.Node, batch)
		errs := make([]error, batch)
		var wg sync.WaitGroup
		for i := range batch {
			name := fmt.Sprintf("edge%02d", c.edges+i+1)
			flags := append([]string{"--join", c.leader.APIURL(), "--role", "edge"}, cfg.edgeFlags...)
			if k := c.edges + i; k >= cfg.relays && cfg.relays > 0 {
				relay := c.nodes[3+(k-cfg.relays)%cfg.relays]
				flags = append([]string{"--feed-from", relay.APIURL(), "--role", "edge"}, cfg.edgeFlags...)
			}
			wg.Go(func() { started[i], errs[i] = launch(ctx, cfg, name, false, flags...) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				return err
			}
			c.nodes = append(c.nodes, started[i])
		}
		c.edges += batch
	}
	if err := c.waitMembers(ctx, 3+want); err != nil {
		return err
	}
	log.Printf("3 core + %d edges ready", want)
	if cfg.assign != nil {
		var list atoll.NodeList
		if err := c.leader.Call(ctx, "GET", "/v1/nodes", nil, &list); err != nil {
			return err
		}
		fed := map[string]int{}
		for _, nd := range list.Nodes {
			if nd.Role == atoll.RoleEdge {
				fed[cmp.Or(nd.Feeder, "(direct)")]++
			}
		}
		log.Printf("edges by feeder: %v", fed)
	}
	return nil
}

// waitLevel waits until the cluster's feature level is at least level.
func (c *cluster) waitLevel(ctx context.Context, level int) error {
	deadline := time.Now().Add(time.Minute)
	for {
		var st atoll.Status
		err := c.leader.Call(ctx, "GET", "/v1/status", nil, &st)
		if err == nil && st.FeatureLevel >= level {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("cluster feature level %d after 1m, want %d (err %v)", st.FeatureLevel, level, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitMembers waits until the leader's node table lists want active nodes
// and every node answers /readyz.
func (c *cluster) waitMembers(ctx context.Context, want int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var st atoll.Status
		err := c.leader.Call(ctx, "GET", "/v1/status", nil, &st)
		active := 0
		for _, nd := range st.Nodes {
			if nd.State == "" || nd.State == "active" {
				active++
			}
		}
		if err == nil && active >= want {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d of %d nodes active after 2m (err %v)", active, want, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, n := range c.nodes {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := n.WaitReady(wctx, "/readyz")
		cancel()
		if err != nil {
			return fmt.Errorf("node %s not ready: %w", n.ID, err)
		}
	}
	return nil
}

// cpuByRole is the CPU seconds used so far by the core nodes other than
// the leader, and by the edges.
func (c *cluster) cpuByRole() (cores, edges float64) {
	for i, n := range c.nodes {
		switch {
		case n == c.leader:
		case i < 3:
			cores += cpuSeconds(n.Pid())
		default:
			edges += cpuSeconds(n.Pid())
		}
	}
	return cores, edges
}

// findLeader points c.leader at the node that leads now (a loaded machine
// can make the bootstrap node lose its leadership) and returns its id.
func (c *cluster) findLeader(ctx context.Context) (string, error) {
	var st atoll.Status
	if err := c.nodes[0].Call(ctx, "GET", "/v1/status", nil, &st); err != nil {
		return "", err
	}
	for _, n := range c.nodes {
		if n.ID == st.LeaderID {
			c.leader = n
			return n.ID, nil
		}
	}
	return "", fmt.Errorf("no node of this cluster leads (leader %q)", st.LeaderID)
}
