package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/bench/benchkit"
)

// redeployResult is the redeploy section's figures: one-file redeploys of
// the synthetic site through `atoll deploy` at R=3, on two clusters of 3
// core nodes side by side, one of -atoll and one of -redeploy-baseline
// (each cluster run by its own binary's CLI), alternating.
type redeployResult struct {
	Skipped    string    `json:"skipped,omitempty"`
	Files      int       `json:"files"`
	Baseline   string    `json:"baseline"`
	AtollMs    []float64 `json:"atoll_ms"`
	BaselineMs []float64 `json:"baseline_ms"`
	AtollMed   float64   `json:"atoll_median_ms"`
	AtollMax   float64   `json:"atoll_max_ms"`
	BaseMed    float64   `json:"baseline_median_ms"`
	BaseMax    float64   `json:"baseline_max_ms"`
}

// benchRedeploy starts the two clusters, deploys the site to each, waits
// for their compressed variants, then times runs rounds of: change one
// file, redeploy to one cluster, redeploy to the other (which goes first
// alternates by round, so drift in the machine's load falls on both).
func benchRedeploy(ctx context.Context, cfg config, s *site) (*redeployResult, error) {
	if cfg.redeployBaseline == "" {
		return nil, errSkip{"no -redeploy-baseline binary to compare with"}
	}
	bins := []string{cfg.atollBin, cfg.redeployBaseline}
	var heads []*atolltest.Node
	for i, bin := range bins {
		nodes, err := startCores(ctx, bin, filepath.Join(cfg.workDir, fmt.Sprintf("redeploy-%d", i)))
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			defer n.Close()
		}
		if _, err := cli(ctx, nodes[0], "site", "create", "synth"); err != nil {
			return nil, err
		}
		if _, err := cli(ctx, nodes[0], "deploy", s.dir, "--site", "synth"); err != nil {
			return nil, fmt.Errorf("%s: first deploy: %w", bin, err)
		}
		if _, err := waitCompressed(ctx, nodes); err != nil {
			return nil, err
		}
		heads = append(heads, nodes[0])
	}
	runs := 15
	if cfg.quick {
		runs = 6
	}
	times := make([][]float64, 2)
	for i := range runs {
		if _, err := s.touch(100 + i); err != nil {
			return nil, err
		}
		order := []int{0, 1}
		if i%2 == 1 {
			order = []int{1, 0}
		}
		for _, k := range order {
			t0 := time.Now()
			if _, err := cli(ctx, heads[k], "deploy", s.dir, "--site", "synth"); err != nil {
				return nil, fmt.Errorf("%s: redeploy: %w", bins[k], err)
			}
			times[k] = append(times[k], benchkit.Ms(time.Since(t0)))
		}
	}
	r := &redeployResult{Files: s.files, Baseline: cfg.redeployBaseline, AtollMs: times[0], BaselineMs: times[1],
		AtollMed: benchkit.Median(times[0]), AtollMax: slices.Max(times[0]), BaseMed: benchkit.Median(times[1]), BaseMax: slices.Max(times[1])}
	log.Printf("redeploy (R=3, one file changed, %d runs): %s median %.0f ms max %.0f ms; %s median %.0f ms max %.0f ms",
		runs, cfg.atollBin, r.AtollMed, r.AtollMax, cfg.redeployBaseline, r.BaseMed, r.BaseMax)
	return r, nil
}

// startCores starts 3 core nodes of bin at R=3 under dir and waits until
// they form a cluster.
func startCores(ctx context.Context, bin, dir string) ([]*atolltest.Node, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	common := []string{"--cluster-key", benchkit.ClusterKey}
	first, err := benchkit.StartNode(ctx, bin, dir, "core1", benchkit.NodeOpts{Bootstrap: true, Replicas: 3, Extra: common})
	if err != nil {
		return nil, err
	}
	nodes := []*atolltest.Node{first}
	for _, name := range []string{"core2", "core3"} {
		n, err := benchkit.StartNode(ctx, bin, dir, name, benchkit.NodeOpts{Join: first.APIURL(), Replicas: 3, Extra: common})
		if err != nil {
			closeAll(nodes)
			return nil, err
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		if err := benchkit.WaitReady(ctx, n, "/readyz", 60*time.Second); err != nil {
			closeAll(nodes)
			return nil, fmt.Errorf("cluster of %s did not form: %w (logs in %s)", bin, err, dir)
		}
	}
	if err := benchkit.WaitMembers(ctx, first, 3, 60*time.Second); err != nil {
		closeAll(nodes)
		return nil, fmt.Errorf("cluster of %s did not form: %w (logs in %s)", bin, err, dir)
	}
	return nodes, nil
}

func closeAll(nodes []*atolltest.Node) {
	for _, n := range nodes {
		n.Close()
	}
}
