// Command atoll-bench runs Atoll's whole-system benchmarks, side by side
// with nginx on the same machine and in the same run, and prints a table of
// the figures (see bench/README.md for what it measures and how).
//
// It starts everything it measures itself, on loopback ports and in a
// temporary folder: bin/atoll (one node, and a 3 core + 1 edge cluster when
// the binary supports it), nginx with a tuned configuration, and wrk as the
// load generator. Only 127.0.0.1 is ever contacted. Every loop is bounded in
// time or count, and every process it starts is stopped by its pid when it
// returns, also on Ctrl-C.
//
//	go run ./bench/cmd/atoll-bench            # the full run (make bench)
//	go run ./bench/cmd/atoll-bench -quick     # about 3 minutes (make bench-quick)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/bench/benchkit"
)

// config is what the flags set.
type config struct {
	quick      bool
	atollBin   string
	outDir     string
	workDir    string
	keep       bool
	install    bool
	sections   []string
	rounds     int
	duration   time.Duration
	threads    int
	conns      int
	textFiles  int // synthetic site: 1-30 KiB text files
	binFiles   int // synthetic site: 100 KiB-5 MiB binaries
	metaFiles  int // entries of the big metadata deploy
	propagRuns int // publishes timed for propagation
	coldFiles  int // files requested cold on the edge
	seed       uint64
	baseline   string // binary the metrics section compares with
	// redeployBaseline is the binary the redeploy section compares with.
	redeployBaseline string
	metaBase         string // binary the meta section's lookups are compared with
	// ingestBaseline is a binary the ingest section alternates with.
	ingestBaseline string
	ingestProfile  string // folder for CPU profiles of the first ingest round
	ingestSettle   bool   // wait for every ingest node's compression backlog before each deploy
	// variantsProfile is a folder for CPU profiles of every node during
	// the first seconds after a deploy section's publish.
	variantsProfile string
}

var allSections = []string{"disk", "deploy", "serve", "rules", "meta", "cluster", "ingest", "metrics", "redeploy"}

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("atoll-bench: ")
	var cfg config
	var sections string
	flag.BoolVar(&cfg.quick, "quick", false, "smaller site, shorter runs: the whole run in about 3 minutes")
	flag.StringVar(&cfg.atollBin, "atoll", "bin/atoll", "the atoll binary to measure")
	flag.StringVar(&cfg.outDir, "out", "bench/out", "folder for results (JSON and markdown) and logs")
	flag.StringVar(&cfg.workDir, "work", "", "folder for the site, data dirs and configs (default: a new temp folder)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work folder")
	flag.BoolVar(&cfg.install, "install", true, "apt-get install nginx and wrk if missing")
	flag.StringVar(&sections, "only", strings.Join(allSections, ","), "sections to run: "+strings.Join(allSections, ","))
	flag.IntVar(&cfg.rounds, "rounds", 0, "alternating rounds per serving case (default 3, quick 2)")
	flag.DurationVar(&cfg.duration, "duration", 0, "wrk duration per round (default 10s, quick 3s)")
	flag.IntVar(&cfg.threads, "threads", 2, "wrk threads")
	flag.IntVar(&cfg.conns, "conns", 64, "wrk connections (keep-alive)")
	flag.IntVar(&cfg.metaFiles, "meta-files", 0, "manifest entries of the metadata-scale deploy (default 1000000, quick 200000)")
	flag.Uint64Var(&cfg.seed, "seed", 1, "seed of the synthetic site")
	flag.StringVar(&cfg.baseline, "baseline", "", "an atoll binary built without metrics, for the metrics section (default: that section is skipped)")
	flag.StringVar(&cfg.redeployBaseline, "redeploy-baseline", "", "an atoll binary to compare one-file redeploys at R=3 with, cluster against cluster (default: the redeploy section is skipped)")
	flag.StringVar(&cfg.metaBase, "meta-baseline", "", "an atoll binary whose lookups the meta section measures in alternating rounds with -atoll's (default: none)")
	flag.StringVar(&cfg.ingestBaseline, "ingest-baseline", "", "an earlier atoll binary the ingest section alternates rounds with (default: only -atoll)")
	flag.BoolVar(&cfg.ingestSettle, "ingest-settle", true, "before each ingest deploy, wait until no node of the ingest section has blobs waiting for background compression (false: deploys follow each other while the earlier ones' variants are made)")
	flag.StringVar(&cfg.ingestProfile, "ingest-profile", "", "a folder where the ingest section writes a 5 s CPU profile of the node each first-round deploy goes to, and a 5 s execution trace of every node of the topology (go tool trace)")
	flag.StringVar(&cfg.variantsProfile, "variants-profile", "", "a folder where the deploy and cluster sections write a 30 s CPU profile of every node from the publish on (while the variants are made and sent)")
	flag.Parse()

	cfg.sections = strings.Split(sections, ",")
	for _, s := range cfg.sections {
		if !slices.Contains(allSections, s) {
			log.Fatalf("-only: unknown section %q (have %s)", s, strings.Join(allSections, ","))
		}
	}
	defaults := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if cfg.quick {
				*v = quick
			}
		}
	}
	defaults(&cfg.rounds, 3, 2)
	defaults(&cfg.textFiles, 4900, 950)
	defaults(&cfg.binFiles, 100, 20)
	defaults(&cfg.metaFiles, 1_000_000, 200_000)
	defaults(&cfg.propagRuns, 50, 15)
	defaults(&cfg.coldFiles, 200, 50)
	if cfg.duration == 0 {
		cfg.duration = 10 * time.Second
		if cfg.quick {
			cfg.duration = 3 * time.Second
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Print(err)
		benchkit.Procs.Close()
		os.Exit(1)
	}
}

func (c config) has(section string) bool { return slices.Contains(c.sections, section) }

// skippable sorts the error of section: nil stays nil; a skip (errSkip) is
// logged and returned as the reason; anything else is the run's failure.
func skippable(section string, err error) (skipped string, _ error) {
	var skip errSkip
	switch {
	case err == nil:
		return "", nil
	case errors.As(err, &skip):
		log.Printf("%s: skipped: %v", section, err)
		return err.Error(), nil
	}
	return "", fmt.Errorf("%s: %w", section, err)
}

// runSingle runs the sections measured on one node (deploy, serve, rules,
// meta), on a node started for them.
func runSingle(ctx context.Context, cfg config, res *results, files *site) (err error) {
	if !cfg.has("deploy") && !cfg.has("serve") && !cfg.has("rules") && !cfg.has("meta") {
		return nil
	}
	node, err := startSingle(ctx, cfg)
	if err != nil {
		return err
	}
	defer node.Close()
	if cfg.has("deploy") || cfg.has("serve") {
		if res.Deploy, err = benchDeploy(ctx, cfg, node, []*atolltest.Node{node}, files, res.DiskMBps, 1); err != nil {
			return fmt.Errorf("deploy: %w", err)
		}
	}
	if cfg.has("serve") {
		if res.Serve, err = benchServe(ctx, cfg, node, files); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	if cfg.has("rules") {
		if res.Rules, err = benchRules(ctx, cfg, node, files); err != nil {
			return fmt.Errorf("rules: %w", err)
		}
	}
	if cfg.has("meta") {
		if res.Meta, err = benchMeta(ctx, cfg, node); err != nil {
			return fmt.Errorf("metadata scale: %w", err)
		}
	}
	return nil
}

func run(ctx context.Context, cfg config) (err error) {
	defer benchkit.Procs.Close()
	start := time.Now()
	cleanup, err := prepare(ctx, &cfg)
	defer cleanup()
	if err != nil {
		return err
	}

	res := &results{Started: start.UTC(), Quick: cfg.quick, Machine: machineInfo(), Commit: benchkit.GitDescribe()}
	res.Params = params{Rounds: cfg.rounds, Duration: cfg.duration.String(), Threads: cfg.threads, Conns: cfg.conns,
		TextFiles: cfg.textFiles, BinFiles: cfg.binFiles, MetaFiles: cfg.metaFiles, Seed: cfg.seed}
	log.Printf("machine: %d cores, %s, %s RAM; work folder %s", res.Machine.Cores, res.Machine.CPU, benchkit.Human(res.Machine.MemBytes), cfg.workDir)

	var site *site // the sections but disk and ingest deploy it
	if slices.ContainsFunc(cfg.sections, func(s string) bool { return s != "disk" && s != "ingest" }) {
		if site, err = generateSite(filepath.Join(cfg.workDir, "site"), cfg.textFiles, cfg.binFiles, cfg.seed); err != nil {
			return fmt.Errorf("generate site: %w", err)
		}
		res.Site = site.summary()
		log.Printf("site: %d files, %s (%d text, %d binary)", site.files, benchkit.Human(site.bytes), site.textFiles, site.binFiles)
	}

	if cfg.has("disk") || cfg.has("deploy") || cfg.has("cluster") || cfg.has("ingest") {
		bw, err := diskBandwidth(ctx, filepath.Join(cfg.workDir, "disk-probe"), cfg.quick)
		if err != nil {
			return fmt.Errorf("disk bandwidth: %w", err)
		}
		res.DiskMBps = bw
		log.Printf("disk: %.1f MB/s with an fdatasync per 1 MiB write", bw)
	}

	if err := runSingle(ctx, cfg, res, site); err != nil {
		return err
	}
	if cfg.has("cluster") {
		res.Cluster, err = benchCluster(ctx, cfg, site, res.DiskMBps)
		if skipped, err := skippable("cluster", err); err != nil {
			return err
		} else if skipped != "" {
			res.Cluster = &clusterResult{Skipped: skipped}
		}
	}
	if cfg.has("ingest") {
		if res.Ingest, err = benchIngest(ctx, cfg, res.DiskMBps); err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
	}
	if cfg.has("metrics") {
		res.Metrics, err = benchMetrics(ctx, cfg, site)
		if skipped, err := skippable("metrics", err); err != nil {
			return err
		} else if skipped != "" {
			res.Metrics = &pairResult{Note: "skipped: " + skipped}
		}
	}
	if cfg.has("redeploy") {
		res.Redeploy, err = benchRedeploy(ctx, cfg, site)
		if skipped, err := skippable("redeploy", err); err != nil {
			return err
		} else if skipped != "" {
			res.Redeploy = &redeployResult{Skipped: skipped}
		}
	}
	res.Elapsed = time.Since(start).Round(time.Second).String()
	return save(res, cfg.outDir, start)
}

// prepare makes cfg.atollBin absolute, creates the output and work
// folders and installs the tools; cleanup removes a temporary work folder
// unless -keep.
func prepare(ctx context.Context, cfg *config) (cleanup func(), err error) {
	cleanup = func() {}
	bin, err := filepath.Abs(cfg.atollBin)
	if err != nil {
		return cleanup, err
	}
	if _, err := os.Stat(bin); err != nil {
		return cleanup, fmt.Errorf("atoll binary: %w (run make build)", err)
	}
	cfg.atollBin = bin
	for name, p := range map[string]*string{"-baseline": &cfg.baseline, "-meta-baseline": &cfg.metaBase, "-ingest-baseline": &cfg.ingestBaseline} {
		if *p == "" {
			continue
		}
		if *p, err = filepath.Abs(*p); err != nil {
			return cleanup, err
		}
		if _, err := os.Stat(*p); err != nil {
			return cleanup, fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := os.MkdirAll(cfg.outDir, 0o755); err != nil {
		return cleanup, err
	}
	if cfg.workDir == "" {
		if cfg.workDir, err = os.MkdirTemp("", "atoll-bench-"); err != nil {
			return cleanup, err
		}
		if !cfg.keep {
			dir := cfg.workDir
			cleanup = func() { os.RemoveAll(dir) }
		}
	}
	if err := os.MkdirAll(cfg.workDir, 0o755); err != nil {
		return cleanup, err
	}
	// nginx's workers run as nobody: they must be able to read the site.
	if err := os.Chmod(cfg.workDir, 0o755); err != nil {
		return cleanup, err
	}
	return cleanup, ensureTools(ctx, cfg.install)
}

// save writes the results as JSON and markdown into outDir and prints the
// markdown.
func save(res *results, outDir string, start time.Time) error {
	stamp := start.UTC().Format("20060102-150405")
	js, _ := json.MarshalIndent(res, "", "  ")
	jsonPath := filepath.Join(outDir, "results-"+stamp+".json")
	if err := os.WriteFile(jsonPath, append(js, '\n'), 0o644); err != nil {
		return err
	}
	md := res.markdown()
	mdPath := filepath.Join(outDir, "results-"+stamp+".md")
	if err := os.WriteFile(mdPath, []byte(md), 0o644); err != nil {
		return err
	}
	fmt.Print(md)
	log.Printf("done in %s; results in %s and %s", res.Elapsed, jsonPath, mdPath)
	return nil
}

// errSkip marks a section that cannot run with this binary or machine.
type errSkip struct{ reason string }

func (e errSkip) Error() string { return e.reason }
