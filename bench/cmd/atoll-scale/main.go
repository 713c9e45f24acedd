// Command atoll-scale measures Atoll with a platform's worth of metadata:
// it builds 100,000 sites of 100 files each (10M manifest entries over a
// pool of a few thousand small blobs uploaded once) on a loopback cluster
// of real processes (3 core + 1 edge), through the real API, and then
// takes the figures of bench/README.md ("Platform scale"): FSM and
// snapshot size, snapshot time, a new edge joining and serving every site,
// RSS, publish propagation, edge lookup latency against a 1,000-entry
// state, the repair census and GC, and a node's restart.
//
// Only 127.0.0.1 is contacted; every process it starts is stopped by its
// pid when it returns, also on Ctrl-C; every wait is bounded.
//
//	go run ./bench/cmd/atoll-scale          # 100k sites (make bench-scale)
//	go run ./bench/cmd/atoll-scale -quick   # 10k sites, for iterating
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/atoll-hosting/atoll/bench/benchkit"
)

// config is what the flags set.
type config struct {
	atollBin    string
	outDir      string
	workDir     string
	keep        bool
	sites       int
	files       int
	blobs       int
	conc        int
	apiSites    int
	propagRuns  int
	lookupTime  time.Duration
	maxGenerate time.Duration
}

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("atoll-scale: ")
	var cfg config
	var quick bool
	flag.BoolVar(&quick, "quick", false, "10,000 sites instead of 100,000 (a few minutes)")
	flag.StringVar(&cfg.atollBin, "atoll", "bin/atoll", "the atoll binary to measure")
	flag.StringVar(&cfg.outDir, "out", "bench/out", "folder for the results (JSON and markdown)")
	flag.StringVar(&cfg.workDir, "work", "", "folder for data dirs and logs (default: a new temp folder)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work folder")
	flag.IntVar(&cfg.sites, "sites", 0, "sites to build (default 100000, quick 10000)")
	flag.IntVar(&cfg.files, "files", 100, "files per site")
	flag.IntVar(&cfg.blobs, "blobs", 3000, "distinct blobs in the pool the files share")
	flag.IntVar(&cfg.conc, "concurrency", 64, "sites built at once through the per-site API")
	flag.IntVar(&cfg.apiSites, "api-sites", 1000, "sites built through the per-site API (for its rate); the rest through POST /v1/bulk/sites")
	flag.IntVar(&cfg.propagRuns, "publishes", 50, "publishes timed for propagation")
	flag.DurationVar(&cfg.lookupTime, "lookup-duration", 5*time.Second, "duration of each edge lookup round")
	flag.DurationVar(&cfg.maxGenerate, "max-generate", 20*time.Minute, "stop building sites after this long and measure what was built")
	flag.Parse()
	if cfg.sites == 0 {
		cfg.sites = 100_000
		if quick {
			cfg.sites = 10_000
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, cfg)
	benchkit.Procs.Close()
	if err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, cfg config) error {
	if cfg.workDir == "" {
		dir, err := os.MkdirTemp("", "atoll-scale-")
		if err != nil {
			return err
		}
		cfg.workDir = dir
		if !cfg.keep {
			defer os.RemoveAll(dir)
		}
	}
	if _, err := os.Stat(cfg.atollBin); err != nil {
		return fmt.Errorf("%s: %w (run make build first)", cfg.atollBin, err)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	r := &result{Sites: cfg.sites, FilesPerSite: cfg.files, Blobs: cfg.blobs, LoadAtStart: string(load[:min(len(load), 14)]), Commit: benchkit.GitDescribe()}
	log.Printf("work folder %s; load average %s", cfg.workDir, r.LoadAtStart)
	start := time.Now()
	err := measureAll(ctx, cfg, r)
	r.TotalSeconds = time.Since(start).Seconds()
	if werr := writeResult(cfg.outDir, r); werr != nil && err == nil {
		err = werr
	}
	return err
}

// writeResult writes r as JSON and markdown into dir and the markdown to
// stdout.
func writeResult(dir string, r *result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	stamp := time.Now().UTC().Format("20060102-150405")
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "scale-"+stamp+".json"), b, 0o644); err != nil {
		return err
	}
	md := r.markdown()
	fmt.Print(md)
	return os.WriteFile(filepath.Join(dir, "scale-"+stamp+".md"), []byte(md), 0o644)
}
