package benchkit

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// Cluster is a loopback cluster of real atoll processes: Core[0]
// bootstrapped it, the rest joined it through Core[0]'s API.
type Cluster struct {
	Dir  string
	Core []*atolltest.Node
	Edge []*atolltest.Node
	// Common is the server flags every node got (the cluster key, R).
	Common []string
}

// All returns the core nodes, then the edges.
func (c *Cluster) All() []*atolltest.Node {
	return append(append([]*atolltest.Node{}, c.Core...), c.Edge...)
}

// ClusterOpts shapes StartCluster's cluster.
type ClusterOpts struct {
	Core, Edges int
	Replicas    int
	EdgeFlags   []string // more flags for each edge (e.g. --cache-size)
	Flags       []string // more flags for every node
}

// StartCluster starts a cluster of o.Core core nodes and o.Edges edges
// under dir, and waits until every node is ready and the node table lists
// them all. The nodes are in Procs; a failure names the logs to read.
func StartCluster(ctx context.Context, bin, dir string, o ClusterOpts) (*Cluster, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, Common: append([]string{"--cluster-key", ClusterKey}, o.Flags...)}
	n1, err := StartNode(ctx, bin, dir, "core1", NodeOpts{Bootstrap: true, Replicas: o.Replicas, Extra: c.Common})
	if err != nil {
		return nil, err
	}
	c.Core = append(c.Core, n1)
	if err := WaitReady(ctx, n1, "/readyz", 30*time.Second); err != nil {
		return nil, fmt.Errorf("bootstrap node not ready: %w (logs in %s)", err, dir)
	}
	for i := 2; i <= o.Core; i++ {
		n, err := c.Join(ctx, bin, fmt.Sprintf("core%d", i), "", nil)
		if err != nil {
			return nil, err
		}
		c.Core = append(c.Core, n)
	}
	for i := 1; i <= o.Edges; i++ {
		n, err := c.Join(ctx, bin, fmt.Sprintf("edge%d", i), "edge", o.EdgeFlags)
		if err != nil {
			return nil, err
		}
		c.Edge = append(c.Edge, n)
	}
	for _, n := range c.All() {
		if err := WaitReady(ctx, n, "/readyz", 60*time.Second); err != nil {
			return nil, fmt.Errorf("cluster did not form: %w (logs in %s)", err, dir)
		}
	}
	if err := WaitMembers(ctx, n1, o.Core+o.Edges, 60*time.Second); err != nil {
		return nil, fmt.Errorf("cluster did not form: %w (logs in %s)", err, dir)
	}
	return c, nil
}

// Join starts node name (role "" for core, or "edge") joining the
// cluster through Core[0], with the cluster's common flags and extra, and
// waits until it answers /healthz (not until it is ready).
func (c *Cluster) Join(ctx context.Context, bin, name, role string, extra []string) (*atolltest.Node, error) {
	o := NodeOpts{Join: c.Core[0].APIURL(), Role: role, Extra: append(append([]string{}, c.Common...), extra...)}
	n, err := StartNode(ctx, bin, c.Dir, name, o)
	if err != nil {
		return nil, fmt.Errorf("node %s did not start: %w", name, err)
	}
	return n, nil
}

// PollUntil GETs url (with Host host) until the body is want, and returns
// when that was first seen, relative to t0.
func PollUntil(ctx context.Context, url, host, want string, t0 time.Time) (time.Duration, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for ctx.Err() == nil {
		resp, b, err := atolltest.Fetch(ctx, client, "GET", url, host)
		if err == nil {
			if resp.StatusCode == 200 && string(b) == want {
				return time.Since(t0), nil
			}
			last = fmt.Sprintf("%d %q", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Microsecond)
	}
	return 0, fmt.Errorf("%v (last answer %s)", ctx.Err(), last)
}

// DataDir is the data directory of node n of the cluster.
func (c *Cluster) DataDir(n *atolltest.Node) string { return filepath.Join(c.Dir, n.ID) }

// PublishSeen publishes deploy id through leader (POST
// /v1/deploys/{id}/publish with query, e.g. "?rollback=true") and polls
// every node's edge for path at host until it answers want, at most limit.
// It returns how long the publish call took and how long until the
// slowest node served want, both from the moment the call was sent.
func PublishSeen(ctx context.Context, leader *atolltest.Node, nodes []*atolltest.Node, id, query, host, path, want string, limit time.Duration) (call, worst time.Duration, err error) {
	t0 := time.Now()
	seen := make([]time.Duration, len(nodes))
	errs := make([]error, len(nodes))
	pollCtx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var wg sync.WaitGroup
	for j, n := range nodes {
		wg.Go(func() {
			seen[j], errs[j] = PollUntil(pollCtx, "http://"+n.HTTPAddr+path, host, want, t0)
		})
	}
	err = leader.Call(ctx, "POST", "/v1/deploys/"+id+"/publish"+query, nil, nil)
	call = time.Since(t0)
	wg.Wait()
	if err != nil {
		return call, 0, err
	}
	for j := range nodes {
		if errs[j] != nil {
			return call, 0, fmt.Errorf("node %s never served deploy %s: %w", nodes[j].ID, id, errs[j])
		}
		worst = max(worst, seen[j])
	}
	return call, worst, nil
}
