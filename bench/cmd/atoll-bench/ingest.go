package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/bench/benchkit"
)

// The ingest section's site (issue 16's anchor): 2,000 text files of
// 1-30 KiB and 50 binaries of 100 KiB-2 MiB, about 82 MB.
const (
	ingestTextFiles = 2000
	ingestBinFiles  = 50
	ingestBinMax    = 2 << 20
)

// ingestResult is the ingest section's figures: full deploys of a fresh
// site through the CLI (every blob new), on a 3-core cluster at R=3 and on
// one node, for each binary measured, rounds alternating between them.
type ingestResult struct {
	Files    int          `json:"files"`
	Bytes    int64        `json:"bytes"`
	DiskMBps float64      `json:"disk_mb_s"`
	Rounds   int          `json:"rounds"`
	Cases    []ingestCase `json:"cases"`
}

// ingestCase is one binary on one topology.
type ingestCase struct {
	Binary   string    `json:"binary"` // "atoll" (-atoll) or "baseline" (-ingest-baseline)
	Replicas int       `json:"replicas"`
	Seconds  []float64 `json:"seconds"`
	MedianS  float64   `json:"median_s"`
	MBps     float64   `json:"mb_s"` // site bytes / median
	// One node only: the disk's fdatasync bandwidth probed right before
	// each round's deploy (MB/s), and the median over the rounds of the
	// round's MB/s over its probe. The disk of a VM swings 3-4x within
	// minutes (after other writes' writeback), so a deploy is compared
	// with the disk as it was at its own moment.
	Probes []float64 `json:"disk_probes_mb_s,omitempty"`
	OfDisk float64   `json:"of_disk"`
	ofDisk []float64 // per round
}

// ingestTarget is one binary's nodes: a 3-core cluster and a single node.
type ingestTarget struct {
	name    string
	cluster *atolltest.Node // the core deploys go to
	cores   []*atolltest.Node
	single  *atolltest.Node
}

// nodes returns the nodes of the topology with replicas copies, the one
// deploys go to first.
func (t ingestTarget) nodes(replicas int) []*atolltest.Node {
	if replicas == 1 {
		return []*atolltest.Node{t.single}
	}
	return t.cores
}

// benchIngest measures the ingest section. With cfg.ingestBaseline set,
// the baseline binary's cluster and node run beside the measured one's and
// rounds alternate between them, so both see the same machine.
func benchIngest(ctx context.Context, cfg config, diskMBps float64) (*ingestResult, error) {
	bins := [][2]string{{"atoll", cfg.atollBin}}
	if cfg.ingestBaseline != "" {
		bins = append(bins, [2]string{"baseline", cfg.ingestBaseline})
	}
	var targets []ingestTarget
	for _, b := range bins {
		t, closeAll, err := startIngestTarget(ctx, cfg, b[0], b[1])
		defer closeAll()
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	res := &ingestResult{DiskMBps: diskMBps, Rounds: cfg.rounds}
	cases := map[string]*ingestCase{}
	for round := range cfg.rounds {
		// One fresh site per round, deployed to every target: each has
		// its own data dirs, so every blob is new to each.
		dir := filepath.Join(cfg.workDir, "ingest-site")
		s, err := generateSiteSized(dir, ingestTextFiles, ingestBinFiles, ingestBinMax, cfg.seed+uint64(1000+round))
		if err != nil {
			return nil, err
		}
		res.Files, res.Bytes = s.files, s.bytes
		// The site's pages are written back now, not by the first
		// deploy's group commit (a syncfs of the same file system), which
		// would make the first binary of every round pay for them.
		syscall.Sync()
		// Which binary deploys first alternates by round.
		order := slices.Clone(targets)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, t := range order {
			for _, replicas := range []int{3, 1} {
				n := t.single
				if replicas == 3 {
					n = t.cluster
				}
				if cfg.ingestSettle {
					var all []*atolltest.Node
					for _, other := range targets {
						all = append(all, append(other.nodes(3), other.single)...)
					}
					wait, err := waitCompressed(ctx, all)
					if err != nil {
						return nil, err
					}
					log.Printf("ingest: %s, R=%d, round %d: every node's compression backlog drained after %.1fs", t.name, replicas, round+1, wait.Seconds())
				}
				var profs []func() error
				if cfg.ingestProfile != "" && round == 0 {
					base := filepath.Join(cfg.ingestProfile, fmt.Sprintf("ingest-%s-r%d", t.name, replicas))
					profs = append(profs, profile(ctx, n, "profile", 5, base+".pprof"))
					for i, node := range t.nodes(replicas) {
						profs = append(profs, profile(ctx, node, "trace", 5, fmt.Sprintf("%s-node%d.trace", base, i+1)))
					}
				}
				var probe float64
				if replicas == 1 {
					if probe, err = diskBandwidth(ctx, filepath.Join(cfg.workDir, "ingest-disk-probe"), true); err != nil {
						return nil, fmt.Errorf("disk probe: %w", err)
					}
				}
				secs, err := timeDeploy(ctx, n, s.dir, fmt.Sprintf("ingest-%d", round))
				for _, prof := range profs {
					if perr := prof(); perr != nil {
						log.Printf("ingest: profile: %v", perr)
					}
				}
				if err != nil {
					return nil, fmt.Errorf("%s, R=%d: %w", t.name, replicas, err)
				}
				key := fmt.Sprintf("%s/%d", t.name, replicas)
				c := cases[key]
				if c == nil {
					c = &ingestCase{Binary: t.name, Replicas: replicas}
					cases[key] = c
				}
				c.Seconds = append(c.Seconds, secs)
				if probe > 0 {
					c.Probes = append(c.Probes, probe)
					c.ofDisk = append(c.ofDisk, float64(s.bytes)/1e6/secs/probe)
					log.Printf("ingest: %s, R=%d, round %d: %d files, %s in %.2fs (disk probed at %.0f MB/s just before: %.0f%%)", t.name, replicas, round+1, s.files, benchkit.Human(s.bytes), secs, probe, 100*c.ofDisk[len(c.ofDisk)-1])
				} else {
					log.Printf("ingest: %s, R=%d, round %d: %d files, %s in %.2fs", t.name, replicas, round+1, s.files, benchkit.Human(s.bytes), secs)
				}
			}
		}
		os.RemoveAll(dir)
	}
	for _, t := range targets {
		for _, replicas := range []int{3, 1} {
			c := cases[fmt.Sprintf("%s/%d", t.name, replicas)]
			c.MedianS = benchkit.Median(c.Seconds)
			c.MBps = float64(res.Bytes) / 1e6 / c.MedianS
			if len(c.ofDisk) > 0 {
				c.OfDisk = benchkit.Median(c.ofDisk)
			}
			res.Cases = append(res.Cases, *c)
		}
	}
	return res, nil
}

// startIngestTarget starts binary bin's 3-core cluster (R=3) and single
// node under their own folders; closeAll stops what started.
func startIngestTarget(ctx context.Context, cfg config, name, bin string) (ingestTarget, func(), error) {
	dir := filepath.Join(cfg.workDir, "ingest-"+name)
	if err := os.MkdirAll(filepath.Join(dir, "one"), 0o755); err != nil {
		return ingestTarget{}, func() {}, err
	}
	var started []*atolltest.Node
	closeAll := func() {
		for _, n := range started {
			n.Close()
		}
	}
	t := ingestTarget{name: name}
	common := []string{"--cluster-key", benchkit.ClusterKey}
	n1, err := benchkit.StartNode(ctx, bin, dir, "core1", benchkit.NodeOpts{Bootstrap: true, Replicas: 3, Extra: common})
	if err != nil {
		return t, closeAll, err
	}
	started = append(started, n1)
	for _, id := range []string{"core2", "core3"} {
		n, err := benchkit.StartNode(ctx, bin, dir, id, benchkit.NodeOpts{Join: n1.APIURL(), Replicas: 3, Extra: common})
		if err != nil {
			return t, closeAll, err
		}
		started = append(started, n)
	}
	for _, n := range started {
		if err := benchkit.WaitReady(ctx, n, "/readyz", 60*time.Second); err != nil {
			return t, closeAll, fmt.Errorf("ingest cluster (%s): %w (logs in %s)", name, err, dir)
		}
	}
	if err := benchkit.WaitMembers(ctx, n1, 3, 60*time.Second); err != nil {
		return t, closeAll, fmt.Errorf("ingest cluster (%s): %w (logs in %s)", name, err, dir)
	}
	single, err := startSingle(ctx, config{atollBin: bin, workDir: filepath.Join(dir, "one")})
	if err != nil {
		return t, closeAll, err
	}
	started = append(started, single)
	t.cluster, t.cores, t.single = n1, started[:3], single
	return t, closeAll, nil
}

// timeDeploy creates site on n and deploys dir to it through the CLI,
// returning the deploy's wall time in seconds (the CLI process, end to
// end: hashing, manifest, uploads, publish).
func timeDeploy(ctx context.Context, n *atolltest.Node, dir, site string) (float64, error) {
	if _, err := cli(ctx, n, "site", "create", site); err != nil {
		return 0, err
	}
	t0 := time.Now()
	out, err := cli(ctx, n, "deploy", dir, "--site", site)
	if err != nil {
		return 0, err
	}
	if !strings.Contains(out, "published") && !strings.Contains(out, "live") {
		log.Printf("ingest: deploy said: %s", firstLine(out))
	}
	return time.Since(t0).Seconds(), nil
}

// profile starts a profile of node n for the given seconds, kind
// "profile" (CPU) or "trace" (the Go execution trace: where each goroutine
// ran, waited and blocked), and returns the function that waits for it and
// writes it to path.
func profile(ctx context.Context, n *atolltest.Node, kind string, seconds int, path string) func() error {
	done := make(chan error, 1)
	go func() {
		req, err := http.NewRequestWithContext(ctx, "GET", n.APIURL()+fmt.Sprintf("/debug/pprof/%s?seconds=%d", kind, seconds), nil)
		if err != nil {
			done <- err
			return
		}
		req.Header.Set("Authorization", "Bearer "+n.AdminToken)
		resp, err := benchkit.APIClient.Do(req)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(path, b, 0o644)
		}
		done <- err
	}()
	return func() error { return <-done }
}
