package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/bench/benchkit"
)

// clusterResult is the cluster section's figures (3 core + 1 edge).
type clusterResult struct {
	Skipped string        `json:"skipped,omitempty"`
	Deploy  *deployResult `json:"deploy,omitempty"`
	// Publish propagation: from sending the publish to every node's edge
	// serving the new deploy.
	PropagationMs    []float64 `json:"propagation_ms,omitempty"`
	PropagationP50Ms float64   `json:"propagation_p50_ms"`
	PropagationP99Ms float64   `json:"propagation_p99_ms"`
	PublishCallP50Ms float64   `json:"publish_call_p50_ms"`
	PublishCallP99Ms float64   `json:"publish_call_p99_ms"`
	PublishCallsMs   []float64 `json:"publish_calls_ms,omitempty"`
	// Cold miss on the edge: first request of a blob the edge lacks, and
	// the same request again, sequential on one keep-alive connection.
	ColdFiles       int     `json:"cold_files"`
	ColdP50Ms       float64 `json:"cold_p50_ms"`
	ColdP99Ms       float64 `json:"cold_p99_ms"`
	HotP50Ms        float64 `json:"hot_p50_ms"`
	HotP99Ms        float64 `json:"hot_p99_ms"`
	ColdOverheadP50 float64 `json:"cold_overhead_p50_ms"`
}

// clusterFlags reports which cluster flags `atoll server --help` lists.
func clusterFlags(bin string) (join, key, cache bool) {
	out, _ := exec.Command(bin, "server", "--help").CombinedOutput()
	s := string(out)
	return strings.Contains(s, "-join"), strings.Contains(s, "-cluster-key"), strings.Contains(s, "-cache-size")
}

func benchCluster(ctx context.Context, cfg config, s *site, diskMBps float64) (*clusterResult, error) {
	join, key, cache := clusterFlags(cfg.atollBin)
	if !join || !key {
		return nil, errSkip{"this atoll binary has no multi-node support yet (`atoll server --help` lists neither --join nor --cluster-key together)"}
	}
	var edgeFlags []string
	if cache {
		edgeFlags = []string{"--cache-size", "1GiB"}
	}
	c, err := benchkit.StartCluster(ctx, cfg.atollBin, filepath.Join(cfg.workDir, "cluster"),
		benchkit.ClusterOpts{Core: 3, Edges: 1, Replicas: 3, EdgeFlags: edgeFlags})
	if err != nil {
		return nil, errSkip{err.Error()}
	}
	defer func() {
		for _, n := range c.All() {
			n.Close()
		}
	}()
	n1, nodes := c.Core[0], c.All()
	edge := nodes[3]
	log.Printf("cluster: 3 core + 1 edge ready")

	r := &clusterResult{}
	if r.Deploy, err = benchDeploy(ctx, cfg, n1, nodes, s, diskMBps, 3); err != nil {
		return nil, fmt.Errorf("deploy at R=3: %w", err)
	}
	if err := propagation(ctx, cfg, n1, nodes, r); err != nil {
		return nil, fmt.Errorf("propagation: %w", err)
	}
	if err := coldMiss(ctx, cfg, n1, edge, nodes, r); err != nil {
		return nil, fmt.Errorf("cold miss: %w", err)
	}
	return r, nil
}

// propagation publishes two deploys alternately and times how long until
// every node's edge serves the one just published.
func propagation(ctx context.Context, cfg config, leader *atolltest.Node, nodes []*atolltest.Node, r *clusterResult) error {
	base := filepath.Join(cfg.workDir, "prop")
	ids := map[string]string{}
	if _, err := cli(ctx, leader, "site", "create", "prop"); err != nil {
		return err
	}
	for i, v := range []string{"A", "B"} {
		dir := filepath.Join(base, v)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "probe.txt"), []byte("version "+v+"\n"), 0o644); err != nil {
			return err
		}
		args := []string{"deploy", dir, "--site", "prop"}
		if i == 1 {
			args = append(args, "--no-publish")
		}
		out, err := cli(ctx, leader, args...)
		if err != nil {
			return err
		}
		if ids[v] = atolltest.DeployID(out); ids[v] == "" {
			return fmt.Errorf("no deploy id in %q", out)
		}
	}
	var calls []float64
	for i := range cfg.propagRuns {
		v := []string{"B", "A"}[i%2]
		// Every other publish goes back to the older deploy: a rollback.
		call, worst, err := benchkit.PublishSeen(ctx, leader, nodes, ids[v], "?rollback=true", "prop.localhost", "/probe.txt", "version "+v+"\n", 5*time.Second)
		calls = append(calls, benchkit.Ms(call))
		if err != nil {
			return err
		}
		r.PropagationMs = append(r.PropagationMs, benchkit.Ms(worst))
	}
	r.PropagationP50Ms = benchkit.Percentile(r.PropagationMs, 50)
	r.PropagationP99Ms = benchkit.Percentile(r.PropagationMs, 99)
	r.PublishCallP50Ms = benchkit.Percentile(calls, 50)
	r.PublishCallP99Ms = benchkit.Percentile(calls, 99)
	r.PublishCallsMs = calls
	log.Printf("cluster: publish propagation to all %d nodes p50 %.1f ms, p99 %.1f ms over %d publishes (publish call p50 %.1f ms, p99 %.1f ms)",
		len(nodes), r.PropagationP50Ms, r.PropagationP99Ms, len(r.PropagationMs), r.PublishCallP50Ms, r.PublishCallP99Ms)
	return nil
}

// coldMiss deploys files without publishing them (so no prefetch brings
// them to the edge) and requests each through the edge's preview host,
// twice: the first request makes the edge fetch the blob from its owners.
func coldMiss(ctx context.Context, cfg config, leader, edge *atolltest.Node, all []*atolltest.Node, r *clusterResult) error {
	id, err := deployColdFiles(ctx, cfg, leader)
	if err != nil {
		return err
	}
	// The owners make the variants of the new files in the background;
	// a cold miss is timed against a settled cluster, as it would happen
	// minutes after a deploy, not against compression on the same cores.
	if _, err := waitCompressed(ctx, all); err != nil {
		return err
	}
	get := timedGetter(ctx, edge, id+"--cold.localhost")
	// The first file doubles as the probe that the edge knows the deploy
	// (its metadata arrives through Raft); it is not counted.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := get("/f0000.txt"); err == nil {
			break
		} else if time.Now().After(deadline) {
			return fmt.Errorf("the edge does not serve deploy %s after 10s: %w", id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	timeAll := func() ([]float64, error) {
		var out []float64
		for i := 1; i < cfg.coldFiles; i++ { // f0000 was the probe
			d, err := get(fmt.Sprintf("/f%04d.txt", i))
			if err != nil {
				return nil, err
			}
			out = append(out, benchkit.Ms(d))
		}
		return out, nil
	}
	cold, err := timeAll()
	if err != nil {
		return err
	}
	hot, err := timeAll()
	if err != nil {
		return err
	}
	r.ColdFiles = len(cold)
	r.ColdP50Ms, r.ColdP99Ms = benchkit.Percentile(cold, 50), benchkit.Percentile(cold, 99)
	r.HotP50Ms, r.HotP99Ms = benchkit.Percentile(hot, 50), benchkit.Percentile(hot, 99)
	r.ColdOverheadP50 = r.ColdP50Ms - r.HotP50Ms
	log.Printf("cluster: edge cold miss p50 %.2f ms (p99 %.2f), hot p50 %.2f ms: +%.2f ms at p50",
		r.ColdP50Ms, r.ColdP99Ms, r.HotP50Ms, r.ColdOverheadP50)
	return nil
}

// deployColdFiles writes cfg.coldFiles files of 16 KiB and deploys them
// to site "cold" without publishing; it returns the deploy's id.
func deployColdFiles(ctx context.Context, cfg config, leader *atolltest.Node) (string, error) {
	dir := filepath.Join(cfg.workDir, "cold")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	rng := []byte("cold miss content ")
	for i := range cfg.coldFiles {
		b := make([]byte, 0, 16<<10)
		for len(b) < 16<<10 {
			b = append(b, fmt.Sprintf("%s%d-%d\n", rng, i, len(b))...)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d.txt", i)), b[:16<<10], 0o644); err != nil {
			return "", err
		}
	}
	if _, err := cli(ctx, leader, "site", "create", "cold"); err != nil {
		return "", err
	}
	out, err := cli(ctx, leader, "deploy", dir, "--site", "cold", "--no-publish")
	if err != nil {
		return "", err
	}
	id := atolltest.DeployID(out)
	if id == "" {
		return "", fmt.Errorf("no deploy id in %q", out)
	}
	return id, nil
}

// timedGetter returns a function that GETs a 16 KiB file of host from the
// edge, one connection kept alive, and times it.
func timedGetter(ctx context.Context, edge *atolltest.Node, host string) func(path string) (time.Duration, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 1}}
	return func(path string) (time.Duration, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+edge.HTTPAddr+path, nil)
		req.Host = host
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if resp.StatusCode != 200 || n != 16<<10 {
			return d, fmt.Errorf("GET %s on the edge: %s, %d bytes", path, resp.Status, n)
		}
		return d, nil
	}
}
