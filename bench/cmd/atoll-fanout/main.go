// Command atoll-fanout measures what each edge costs the Raft leader: a
// cluster of 3 core nodes and E edges (real `atoll server` processes on
// loopback, as the cluster section of atoll-bench starts them), grown
// through the -edges steps (1, 10, 30, 50 by default). At each step it
// takes, on the leader: CPU (utime+stime from /proc) per second while idle
// and per publish, RSS, goroutines and the bytes it writes (wchar of
// /proc/<pid>/io: sockets and files) per second idle and per publish; and
// for the cluster: publish visible on every node, p50 and p99 (each node's
// edge polled until it serves the deploy just published). At the last step
// it saves two CPU profiles of the leader (idle and under publishes) from
// its /debug/pprof/profile. docs/FANOUT.md models these figures.
//
//	go run ./bench/cmd/atoll-fanout                    # make bench-scale runs it
//	go run ./bench/cmd/atoll-fanout -edges 1,10 -publishes 30
//	go run ./bench/cmd/atoll-fanout -model bench/out/fanout-*.json   # the model, fitted to runs
//	go run ./bench/cmd/atoll-fanout -edges 30 -relays -relay-fanout 10   # 30 edges fed through 3 relays
//	go run ./bench/cmd/atoll-fanout -edges 30 -assign 3   # 30 edges joining with --join; the leader keeps 3 direct (--max-direct-edges)
//
// Every process it starts runs in its own process group and is stopped by
// pid when it returns, Ctrl-C included; every wait is bounded.
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// config is what the flags set.
type config struct {
	atollBin  string
	outDir    string
	workDir   string
	keep      bool
	edges     []int
	publishes int
	idle      time.Duration
	profile   time.Duration
	edgeFlags []string
	// relays > 0 feeds the edges through relays: the first `relays`
	// edges are Raft non-voters, every other one a fed edge
	// (--feed-from) of one of them in turn.
	relays int
	// assign, when set, runs the cores with --max-direct-edges *assign
	// and starts every edge with --join alone: the leader assigns the
	// edges beyond the first *assign to relays.
	assign *int
}

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("atoll-fanout: ")
	var cfg config
	var edges, edgeFlags string
	flag.StringVar(&cfg.atollBin, "atoll", "bin/atoll", "the atoll binary to measure")
	flag.StringVar(&cfg.outDir, "out", "bench/out", "folder for results (JSON), profiles and logs")
	flag.StringVar(&cfg.workDir, "work", "", "folder for data dirs and logs (default: a new temp folder)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work folder")
	flag.StringVar(&edges, "edges", "1,10,30,50", "edge counts measured, ascending (the cluster grows from one to the next)")
	flag.IntVar(&cfg.publishes, "publishes", 60, "publishes timed at each edge count")
	flag.DurationVar(&cfg.idle, "idle", 15*time.Second, "idle window over which the leader's CPU and bytes are read at each edge count")
	flag.DurationVar(&cfg.profile, "profile", 10*time.Second, "length of each leader CPU profile at the last edge count (0: none)")
	flag.StringVar(&edgeFlags, "edge-flags", "--cache-size 16MiB --compress-workers -1", "extra server flags of every edge (space-separated): edges are kept light")
	model := flag.Bool("model", false, "fit the model of docs/FANOUT.md to the result files named as arguments and print it; start nothing")
	fanout := flag.Int("relay-fanout", 32, "edges one relay feeds: with -model, for the relay design's predictions; with -relays, the relays started are ceil(last -edges count / this)")
	relays := flag.Bool("relays", false, "feed the edges through relays (fed edges, --feed-from) instead of from the leader: see -relay-fanout")
	assign := flag.Int("assign", -1, "run the cores with --max-direct-edges `K` and start every edge with --join alone, so that the leader assigns the edges past K to relays (-1: off)")
	flag.Parse()
	if *assign >= 0 {
		if *relays {
			log.Fatal("-assign and -relays exclude each other")
		}
		cfg.assign = assign
	}
	if *model {
		if err := runModel(flag.Args(), *fanout); err != nil {
			log.Fatal(err)
		}
		return
	}
	for _, s := range strings.Split(edges, ",") {
		e, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || e < 1 || (len(cfg.edges) > 0 && e <= cfg.edges[len(cfg.edges)-1]) {
			log.Fatalf("-edges: %q is not a list of ascending counts >= 1", edges)
		}
		cfg.edges = append(cfg.edges, e)
	}
	cfg.edgeFlags = strings.Fields(edgeFlags)
	if *relays {
		if *fanout < 1 {
			log.Fatalf("-relay-fanout %d: want at least 1", *fanout)
		}
		last := cfg.edges[len(cfg.edges)-1]
		cfg.relays = (last + *fanout - 1) / *fanout
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, cfg)
	procs.Close()
	if err != nil {
		log.Fatal(err)
	}
}

// result is the whole run, written as JSON to -out.
type result struct {
	Started time.Time `json:"started"`
	Load    string    `json:"load_at_start"`
	LoadEnd string    `json:"load_at_end"`
	Cores   int       `json:"cores"`
	Relays  int       `json:"relays,omitempty"`           // edges fed through this many relays (-relays)
	Assign  *int      `json:"max_direct_edges,omitempty"` // -assign: the cores' --max-direct-edges
	Steps   []step    `json:"steps"`
}

func run(ctx context.Context, cfg config) error {
	if cfg.workDir == "" {
		d, err := os.MkdirTemp("", "atoll-fanout-")
		if err != nil {
			return err
		}
		cfg.workDir = d
	}
	if !cfg.keep {
		defer os.RemoveAll(cfg.workDir)
	}
	if err := os.MkdirAll(cfg.outDir, 0o755); err != nil {
		return err
	}
	res := result{Started: time.Now().UTC(), Load: loadAvg(), Cores: numCPU(), Relays: cfg.relays, Assign: cfg.assign}
	log.Printf("load average at start: %s; work folder %s", res.Load, cfg.workDir)
	c, err := startCores(ctx, cfg)
	if err != nil {
		return err
	}
	probe, err := newProbe(ctx, cfg, c.leader)
	if err != nil {
		return err
	}
	for i, e := range cfg.edges {
		if err := c.addEdges(ctx, cfg, e); err != nil {
			return err
		}
		st, err := measure(ctx, cfg, c, probe, e, i == len(cfg.edges)-1)
		if err != nil {
			return fmt.Errorf("%d edges: %w", e, err)
		}
		res.Steps = append(res.Steps, st)
	}
	res.LoadEnd = loadAvg()
	out := filepath.Join(cfg.outDir, "fanout-"+res.Started.Format("20060102-150405")+".json")
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return err
	}
	fmt.Print(table(res))
	log.Printf("results in %s", out)
	return nil
}

// procs is every process the benchmark starts, stopped by pid on return.
var procs atolltest.Group
