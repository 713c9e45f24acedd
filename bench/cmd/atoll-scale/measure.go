package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/bench/benchkit"
)

// smallSites are built first: their 1,000 entries are the small state
// the edge's lookups are compared against.
const smallSites = 10

func asStatus(err error, se **atolltest.StatusError) bool { return errors.As(err, se) }

// measureAll builds the cluster and the sites and takes every figure into
// r. It stops at the first failure; r keeps what was measured.
func measureAll(ctx context.Context, cfg config, r *result) error {
	c, err := benchkit.StartCluster(ctx, cfg.atollBin, filepath.Join(cfg.workDir, "cluster"),
		benchkit.ClusterOpts{Core: 3, Edges: 1, Replicas: 3})
	if err != nil {
		return err
	}
	log.Printf("3 core + 1 edge ready")
	p, err := uploadPool(ctx, c.Core, cfg.blobs)
	if err != nil {
		return fmt.Errorf("upload the blob pool: %w", err)
	}
	small, err := buildSites(ctx, c.Core, 0, smallSites, cfg.files, smallSites, p, time.Minute)
	if err != nil {
		return err
	}
	if small.Built < smallSites {
		return fmt.Errorf("built %d of the first %d sites in a minute: the cluster is too slow to measure", small.Built, smallSites)
	}
	edge := c.Edge[0]
	for i := range smallSites { // they are published concurrently, in no order
		if err := waitServes(ctx, edge, i, cfg.blobs); err != nil {
			return err
		}
	}
	waitCompressed(ctx, c.Core)
	if err := warm(ctx, edge, smallSites, cfg.files); err != nil {
		return err
	}
	if r.LookupSmallState, err = lookups(ctx, edge, smallSites, cfg.files, cfg.lookupTime); err != nil {
		return err
	}
	log.Printf("edge lookups at %d entries: %s", smallSites*cfg.files, r.LookupSmallState)
	apiEnd := min(cfg.sites, smallSites+cfg.apiSites)
	gen, err := buildSites(ctx, c.Core, smallSites, apiEnd, cfg.files, cfg.conc, p, cfg.maxGenerate)
	r.Generate, r.Built, r.Retries = gen, smallSites+gen.Built, retries.Load()
	log.Printf("API: built %d sites in %.0f s (%.0f sites/s) %s", gen.Built, gen.Seconds, gen.PerSec, gen.Stopped)
	if err != nil {
		return err
	}
	if r.Built == apiEnd && apiEnd < cfg.sites {
		bulk, err := bulkBuild(ctx, c.Core[0], apiEnd, cfg.sites, cfg.files, p, cfg.maxGenerate-time.Duration(gen.Seconds*float64(time.Second)))
		r.Bulk, r.Built = bulk, r.Built+bulk.Built
		log.Printf("bulk: built %d sites in %.0f s (%.0f sites/s) %s", bulk.Built, bulk.Seconds, bulk.PerSec, bulk.Stopped)
		if err != nil {
			return err
		}
	}
	if err := verifyBuilt(ctx, c.Core[0], r.Built); err != nil {
		return err
	}
	log.Printf("the cluster holds the %d sites built, each published", r.Built)
	for _, step := range []func(context.Context, config, *benchkit.Cluster, *result) error{
		measureLookups, measurePropagation, measureSizes, measureIdle, measureSnapshot, measureRepair, measureJoin, measureRestart,
	} {
		if err := step(ctx, cfg, c, r); err != nil {
			return err
		}
	}
	if r.Built < cfg.sites {
		// The figures are measured and written, for the sites built; the
		// run still fails: they are not the figures asked for.
		return fmt.Errorf("built %d of the %d sites asked (-max-generate %s): the figures above are for %d sites", r.Built, cfg.sites, cfg.maxGenerate, r.Built)
	}
	return nil
}

// latency is the latency of a series of requests.
type latency struct {
	Requests int     `json:"requests"`
	P50Us    float64 `json:"p50_us"`
	P99Us    float64 `json:"p99_us"`
}

func (l latency) String() string {
	return fmt.Sprintf("p50 %.0f µs, p99 %.0f µs over %d requests", l.P50Us, l.P99Us, l.Requests)
}

// lookups asks edge for random files of random sites among the first
// sites, from 4 keep-alive connections for d, and times each request.
func lookups(ctx context.Context, edge *atolltest.Node, sites, files int, d time.Duration) (latency, error) {
	var mu sync.Mutex
	var all []float64
	var g errgroup.Group
	for w := range 4 {
		g.Go(func() error {
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 1}}
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			var mine []float64
			for end := time.Now().Add(d); time.Now().Before(end) && ctx.Err() == nil; {
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+edge.HTTPAddr+sitePath(rng.IntN(files)), nil)
				req.Host = siteName(rng.IntN(sites)) + ".localhost"
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					return err
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					return fmt.Errorf("GET %s%s on the edge: %s %v", req.Host, req.URL.Path, resp.Status, err)
				}
				mine = append(mine, float64(time.Since(t0).Nanoseconds())/1000)
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return latency{}, err
	}
	return latency{Requests: len(all), P50Us: benchkit.Percentile(all, 50), P99Us: benchkit.Percentile(all, 99)}, nil
}

// waitServes waits (at most a minute) until edge serves site i: the
// edge applies the log a little after the leader.
func waitServes(ctx context.Context, edge *atolltest.Node, i, poolSize int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err := benchkit.PollUntil(ctx, "http://"+edge.HTTPAddr+"/index.html", siteName(i)+".localhost", string(indexPage(i, poolSize)), time.Now())
	return err
}

// warm asks edge once for every file of the first sites, so that the
// timed lookups of the small state find the blobs in the edge's cache, as
// the later rounds over the same sites do.
func warm(ctx context.Context, edge *atolltest.Node, sites, files int) error {
	var g errgroup.Group
	g.SetLimit(4)
	client := &http.Client{Timeout: 30 * time.Second}
	for i := range sites {
		for j := range files {
			g.Go(func() error {
				resp, _, err := atolltest.Fetch(ctx, client, "GET", "http://"+edge.HTTPAddr+sitePath(j), siteName(i)+".localhost")
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("warm the edge: GET %s%s: %s", siteName(i), sitePath(j), resp.Status)
				}
				return err
			})
		}
	}
	return g.Wait()
}

// waitCompressed waits, at most two minutes, until no core node has blobs
// waiting for their compressed variants: the pool just uploaded keeps
// their compression workers busy for a while, and lookups timed meanwhile
// (the 1,000-entry state) would measure that work instead. Past the two
// minutes it logs what is left and goes on.
func waitCompressed(ctx context.Context, nodes []*atolltest.Node) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, n := range nodes {
		for {
			var st struct {
				Pending int `json:"compress_pending"`
			}
			err := n.Call(ctx, "GET", "/v1/status", nil, &st)
			if err == nil && st.Pending == 0 {
				break
			}
			select {
			case <-ctx.Done():
				log.Printf("%s still compresses %d blobs of the pool after two minutes (%v): measuring anyway", n.ID, st.Pending, err)
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// measureLookups times the edge's lookups in the full state: over the
// small sites (the same working set as before generation) and over every
// site, alternating, three rounds each; medians.
func measureLookups(ctx context.Context, cfg config, c *benchkit.Cluster, r *result) error {
	if err := waitServes(ctx, c.Edge[0], r.Built-1, cfg.blobs); err != nil {
		return err
	}
	var small, all []latency
	for range 3 {
		s, err := lookups(ctx, c.Edge[0], smallSites, cfg.files, cfg.lookupTime)
		if err != nil {
			return err
		}
		a, err := lookups(ctx, c.Edge[0], r.Built, cfg.files, cfg.lookupTime)
		if err != nil {
			return err
		}
		small, all = append(small, s), append(all, a)
	}
	r.LookupBigStateSmallSet, r.LookupBigStateAll = medianLatency(small), medianLatency(all)
	log.Printf("edge lookups at %d entries: first %d sites %s; all sites %s", r.Built*cfg.files, smallSites, r.LookupBigStateSmallSet, r.LookupBigStateAll)
	return nil
}

func medianLatency(ls []latency) latency {
	var p50, p99 []float64
	n := 0
	for _, l := range ls {
		p50, p99, n = append(p50, l.P50Us), append(p99, l.P99Us), n+l.Requests
	}
	return latency{Requests: n, P50Us: benchkit.Median(p50), P99Us: benchkit.Median(p99)}
}

// measureSizes records the FSM file of a core and of the edge, and the
// memory of every node.
func measureSizes(_ context.Context, _ config, c *benchkit.Cluster, r *result) error {
	for _, n := range c.All() {
		st, err := os.Stat(filepath.Join(c.DataDir(n), "raft", "fsm.db"))
		if err != nil {
			return err
		}
		m := benchkit.ProcStatus(n.Pid())
		r.Nodes = append(r.Nodes, nodeFigures{ID: n.ID, FSMBytes: st.Size(), RSS: m["VmRSS:"], Peak: m["VmHWM:"], Anon: m["RssAnon:"], File: m["RssFile:"]})
		log.Printf("%s: fsm.db %s; RSS %s (anon %s, file %s), peak %s", n.ID, benchkit.Human(st.Size()),
			benchkit.Human(m["VmRSS:"]), benchkit.Human(m["RssAnon:"]), benchkit.Human(m["RssFile:"]), benchkit.Human(m["VmHWM:"]))
	}
	return nil
}

// idleWindow is how long measureIdle watches the idle cluster: two
// metrics refreshes (every 10 s) and the repair, feature and expiry
// loops' ticks.
const idleWindow = 20 * time.Second

// measureIdle records the CPU each node spends while nothing is asked of
// the cluster: what its timers cost with the whole state (the metrics
// refresh, the leader's expiry loop, heartbeats).
func measureIdle(ctx context.Context, _ config, c *benchkit.Cluster, r *result) error {
	before := map[string]float64{}
	for _, n := range c.All() {
		before[n.ID] = cpuSeconds(n.Pid())
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(idleWindow):
	}
	for _, n := range c.All() {
		pct := 100 * (cpuSeconds(n.Pid()) - before[n.ID]) / idleWindow.Seconds()
		r.IdleCPU = append(r.IdleCPU, idleCPU{ID: n.ID, Percent: pct})
		log.Printf("%s: %.1f%% of a core while idle", n.ID, pct)
	}
	return nil
}

// cpuSeconds is the user and system CPU time process pid has used
// (/proc/<pid>/stat, in clock ticks of 1/100 s); 0 when unreadable.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

// measureSnapshot downloads a snapshot of a core's state (GET
// /v1/snapshot: the format raft ships to a joining node) and times it.
func measureSnapshot(ctx context.Context, _ config, c *benchkit.Cluster, r *result) error {
	n := c.Core[0]
	token, _ := n.ReadToken()
	req, _ := http.NewRequestWithContext(ctx, "GET", n.APIURL()+"/v1/snapshot", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	t0 := time.Now()
	resp, err := benchkit.APIClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	size, err := io.Copy(io.Discard, resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return fmt.Errorf("GET /v1/snapshot: %s %v", resp.Status, err)
	}
	r.SnapshotBytes, r.SnapshotSeconds = size, time.Since(t0).Seconds()
	log.Printf("snapshot: %s in %.1f s", benchkit.Human(size), r.SnapshotSeconds)
	return nil
}

// measureRepair runs a repair pass on the leader (POST /v1/repair: the
// local pass, with GC, then the census) and records both durations.
func measureRepair(ctx context.Context, _ config, c *benchkit.Cluster, r *result) error {
	var rep struct {
		Referenced int    `json:"referenced"`
		Took       string `json:"took"`
	}
	t0 := time.Now()
	if err := c.Core[0].Call(ctx, "POST", "/v1/repair", nil, &rep); err != nil {
		return err
	}
	total := time.Since(t0)
	census, err := time.ParseDuration(rep.Took)
	if err != nil {
		return fmt.Errorf("repair report took %q: %w", rep.Took, err)
	}
	r.RepairSeconds, r.CensusSeconds, r.Referenced = total.Seconds(), census.Seconds(), rep.Referenced
	r.LocalPassSeconds = (total - census).Seconds()
	log.Printf("repair: census %.1f s (%d blobs referenced), local pass with GC %.1f s", r.CensusSeconds, rep.Referenced, r.LocalPassSeconds)
	return nil
}

// measureJoin starts a new edge and times until it is ready and until it
// has served the index page of every site.
func measureJoin(ctx context.Context, cfg config, c *benchkit.Cluster, r *result) error {
	t0 := time.Now()
	n, err := c.Join(ctx, cfg.atollBin, "edge2", "edge", nil)
	if err != nil {
		return err
	}
	if err := benchkit.WaitReady(ctx, n, "/readyz", 10*time.Minute); err != nil {
		return err
	}
	r.JoinReadySeconds = time.Since(t0).Seconds()
	log.Printf("new edge ready after %.1f s; asking it for every site", r.JoinReadySeconds)
	var g errgroup.Group
	g.SetLimit(32)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	for i := range r.Built {
		g.Go(func() error {
			host := siteName(i) + ".localhost"
			resp, _, err := atolltest.Fetch(ctx, client, "GET", "http://"+n.HTTPAddr+"/index.html", host)
			if err != nil {
				return err
			}
			if resp.StatusCode != 200 {
				return fmt.Errorf("new edge: GET %s/index.html: %s", host, resp.Status)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	r.JoinServeAllSeconds = time.Since(t0).Seconds()
	m := benchkit.ProcStatus(n.Pid())
	r.NewEdgeRSS, r.NewEdgeAnon, r.NewEdgeFile = m["VmRSS:"], m["RssAnon:"], m["RssFile:"]
	log.Printf("new edge served all %d sites %.1f s after it started (RSS %s)", r.Built, r.JoinServeAllSeconds, benchkit.Human(m["VmRSS:"]))
	return nil
}

// measureRestart stops a core and the edge (SIGTERM) and times each
// restart until the node is ready again.
func measureRestart(ctx context.Context, _ config, c *benchkit.Cluster, r *result) error {
	for _, n := range []*atolltest.Node{c.Core[2], c.Edge[0]} {
		n.Stop(syscall.SIGTERM, 30*time.Second)
		t0 := time.Now()
		if err := benchkit.LaunchNode(ctx, n); err != nil {
			return err
		}
		if err := benchkit.WaitReady(ctx, n, "/readyz", 5*time.Minute); err != nil {
			return err
		}
		d := time.Since(t0).Seconds()
		r.Restarts = append(r.Restarts, restart{ID: n.ID, Seconds: d})
		log.Printf("%s restarted and ready in %.1f s", n.ID, d)
	}
	return nil
}
