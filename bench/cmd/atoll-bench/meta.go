package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/bench/benchkit"
)

// metaResult is the metadata-scale section's figures.
type metaResult struct {
	Entries       int     `json:"entries"`
	Blobs         int     `json:"distinct_blobs"`
	ManifestBytes int64   `json:"manifest_bytes"`
	DeploySeconds float64 `json:"deploy_s"` // create (manifest through Raft) + publish
	CreateSeconds float64 `json:"create_s"`
	RSSBefore     int64   `json:"rss_before"`
	RSSAfter      int64   `json:"rss_after_deploy"`
	metaLookups           // -atoll's
	// Baseline is -meta-baseline's node, measured in the same rounds
	// (alternating with -atoll's), when given.
	Baseline    *metaLookups `json:"baseline,omitempty"`
	BaselineBin string       `json:"baseline_bin,omitempty"`
}

// metaLookups is one node's lookup latency on the edge: random paths over
// the whole manifest (each request a manifest lookup unless the path is
// cached), and one fixed path (hot), for the big and the small site; the
// CPU time per request of the node and of wrk; and the node's memory after
// the lookups.
type metaLookups struct {
	BigRandom   []wrkRun `json:"big_random"`
	SmallRandom []wrkRun `json:"small_random"`
	BigHot      []wrkRun `json:"big_hot"`
	SmallHot    []wrkRun `json:"small_hot"`
	// Medians.
	BigRandomP50, SmallRandomP50, BigRandomP99, SmallRandomP99 float64
	BigHotP50, SmallHotP50, BigHotP99, SmallHotP99             float64
	RandomRatioP50, HotRatioP50                                float64
	// CPU µs per request, random paths (medians): the node's, and wrk's.
	BigNodeCPU, SmallNodeCPU, BigWrkCPU, SmallWrkCPU float64
	RSSPeak                                          int64 `json:"rss_peak"`
	RSSAfterLoad                                     int64 `json:"rss_after_lookups"`
	AnonAfterLoad                                    int64 `json:"rss_anon_after_lookups"` // heap and stacks
	FileAfterLoad                                    int64 `json:"rss_file_after_lookups"` // mapped files (bbolt)
}

const metaBlobs = 256

// metaPath names entry i of a metadata-scale manifest.
func metaPath(i int) string { return fmt.Sprintf("/p/%04d/%03d.html", i/1000, i%1000) }

// metaDeploy creates and publishes a deploy of n entries over metaBlobs
// small blobs, through the API: the manifest is streamed as one JSON body.
func metaDeploy(ctx context.Context, n *atolltest.Node, siteName string, entries int, hashes []string) (create, total time.Duration, size int64, err error) {
	if err := n.Call(ctx, "POST", "/v1/sites", bytes.NewReader([]byte(`{"name":"`+siteName+`"}`)), nil); err != nil {
		return 0, 0, 0, err
	}
	pr, pw := io.Pipe()
	counter := &countWriter{}
	go func() {
		bw := bufio.NewWriterSize(io.MultiWriter(pw, counter), 1<<20)
		bw.WriteString(`{"files":{`)
		for i := range entries {
			if i > 0 {
				bw.WriteByte(',')
			}
			fmt.Fprintf(bw, "%q:%q", metaPath(i), hashes[i%len(hashes)])
		}
		bw.WriteString("}}")
		pw.CloseWithError(bw.Flush())
	}()
	var d struct {
		ID       string   `json:"id"`
		Required []string `json:"required"`
	}
	t0 := time.Now()
	if err := n.Call(ctx, "POST", "/v1/sites/"+siteName+"/deploys", pr, &d); err != nil {
		return 0, 0, 0, err
	}
	create = time.Since(t0)
	if len(d.Required) > 0 {
		return 0, 0, 0, fmt.Errorf("deploy %s requires %d blobs that were uploaded", d.ID, len(d.Required))
	}
	if err := n.Call(ctx, "POST", "/v1/deploys/"+d.ID+"/publish", nil, nil); err != nil {
		return 0, 0, 0, err
	}
	return create, time.Since(t0), counter.n, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// randomPaths is a wrk request function asking for a uniformly random path
// of an n-entry metadata-scale site.
func randomPaths(n int) string {
	return fmt.Sprintf(`
math.randomseed(42)
request = function()
  local i = math.random(0, %d)
  return wrk.format("GET", string.format("/p/%%04d/%%03d.html", math.floor(i / 1000), i %% 1000))
end
`, n-1)
}

// metaSites uploads the blobs and deploys the big and the small site on n.
func metaSites(ctx context.Context, cfg config, n *atolltest.Node) (create, total time.Duration, size int64, err error) {
	var hashes []string
	for i := range metaBlobs {
		b := []byte(fmt.Sprintf("<!doctype html><title>metadata scale %d</title>\n", i))
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		if err := n.Call(ctx, "PUT", "/v1/blobs/"+h, bytes.NewReader(b), nil); err != nil {
			return 0, 0, 0, err
		}
		hashes = append(hashes, h)
	}
	create, total, size, err = metaDeploy(ctx, n, "meta-big", cfg.metaFiles, hashes)
	if err != nil {
		return 0, 0, 0, err
	}
	_, _, _, err = metaDeploy(ctx, n, "meta-small", 1000, hashes)
	return create, total, size, err
}

// metaSide is one node whose lookups are measured.
type metaSide struct {
	label string
	node  *atolltest.Node
	res   *metaLookups
}

func benchMeta(ctx context.Context, cfg config, n *atolltest.Node) (*metaResult, error) {
	r := &metaResult{Entries: cfg.metaFiles, Blobs: metaBlobs}
	r.RSSBefore, _ = benchkit.RSS(n.Pid())
	create, total, size, err := metaSites(ctx, cfg, n)
	if err != nil {
		return nil, err
	}
	r.CreateSeconds, r.DeploySeconds, r.ManifestBytes = create.Seconds(), total.Seconds(), size
	r.RSSAfter, r.RSSPeak = benchkit.RSS(n.Pid())
	log.Printf("metadata: %d entries (%s of JSON) deployed in %.1fs (create %.1fs); RSS %s, peak %s",
		cfg.metaFiles, benchkit.Human(size), r.DeploySeconds, r.CreateSeconds, benchkit.Human(r.RSSAfter), benchkit.Human(r.RSSPeak))
	sides := []metaSide{{"atoll", n, &r.metaLookups}}
	if cfg.metaBase != "" {
		c := cfg
		c.atollBin, c.workDir = cfg.metaBase, filepath.Join(cfg.workDir, "meta-baseline")
		if err := os.MkdirAll(c.workDir, 0o755); err != nil {
			return nil, err
		}
		base, err := startSingle(ctx, c)
		if err != nil {
			return nil, err
		}
		defer base.Close()
		if _, _, _, err := metaSites(ctx, cfg, base); err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		r.Baseline, r.BaselineBin = &metaLookups{}, cfg.metaBase
		sides = append(sides, metaSide{"baseline", base, r.Baseline})
	}
	for _, side := range sides {
		if err := metaWarm(ctx, cfg, side); err != nil {
			return nil, err
		}
	}
	d := 5 * time.Second
	rounds := 2
	if cfg.quick {
		d, rounds = 3*time.Second, 1
	}
	for round := range rounds {
		for i := range sides {
			side := sides[(i+round)%len(sides)] // alternate which binary goes first
			if err := metaRound(ctx, cfg, side, round, d); err != nil {
				return nil, err
			}
		}
	}
	for _, side := range sides {
		side.res.summarize(side.node.Pid())
	}
	return r, nil
}

// metaWarm asks the big site for a few random paths, and waits until the
// node holds its index (atoll_edge_index_deploys), when the binary makes
// one: the index is built in the background once the deploy is requested,
// and the rounds measure lookups, not that build.
func metaWarm(ctx context.Context, cfg config, side metaSide) error {
	o := wrkOpts{url: "http://" + side.node.HTTPAddr + "/", headers: []string{"Host: meta-big.localhost"},
		threads: 1, conns: 1, duration: time.Second, script: randomPaths(cfg.metaFiles)}
	if _, err := runWrk(ctx, cfg.workDir, o); err != nil {
		return err
	}
	t0 := time.Now()
	for time.Since(t0) < 2*time.Minute {
		_, body, err := side.node.API(ctx, "GET", "/metrics", "", "", nil)
		if err != nil {
			return err
		}
		if !bytes.Contains(body, []byte("atoll_edge_index_deploys")) {
			return nil // a binary without indexes
		}
		if bytes.Contains(body, []byte("atoll_edge_index_deploys 1")) {
			log.Printf("metadata: %s holds the big deploy's index %.1fs after its first request", side.label, time.Since(t0).Seconds())
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: no index of the big deploy after 2 minutes", side.label)
}

// metaRound runs one round of wrk on a side: random paths then one hot
// path, on the big site then the small one.
func metaRound(ctx context.Context, cfg config, side metaSide, round int, d time.Duration) error {
	m, n := side.res, side.node
	for _, c := range []struct {
		host    string
		entries int
		random  *[]wrkRun
		hot     *[]wrkRun
	}{
		{"meta-big.localhost", cfg.metaFiles, &m.BigRandom, &m.BigHot},
		{"meta-small.localhost", 1000, &m.SmallRandom, &m.SmallHot},
	} {
		// Latency, not throughput: a light load (4 connections).
		o := wrkOpts{url: "http://" + n.HTTPAddr + "/", headers: []string{"Host: " + c.host}, threads: 1, conns: 4, duration: d, script: randomPaths(c.entries)}
		cpu0 := procCPU(n.Pid())
		run, err := runWrk(ctx, cfg.workDir, o)
		if err != nil {
			return err
		}
		run.NodeCPUUs = float64((procCPU(n.Pid()) - cpu0).Microseconds())
		*c.random = append(*c.random, run)
		o.script, o.url = "", "http://"+n.HTTPAddr+metaPath(c.entries/2)
		hot, err := runWrk(ctx, cfg.workDir, o)
		if err != nil {
			return err
		}
		*c.hot = append(*c.hot, hot)
		log.Printf("metadata round %d %-8s %-21s random p50 %5.0f µs p99 %5.0f µs (%6.0f req/s, node %4.1f µs CPU/req, wrk %4.1f); hot p50 %5.0f µs p99 %5.0f µs",
			round+1, side.label, c.host, run.P50Us, run.P99Us, run.RPS, run.NodeCPUUs/float64(run.Requests), run.WrkCPUUs/float64(run.Requests), hot.P50Us, hot.P99Us)
	}
	return nil
}

// summarize computes the medians and reads the node's memory.
func (m *metaLookups) summarize(pid int) {
	_, m.BigRandomP50, m.BigRandomP99 = medians(m.BigRandom)
	_, m.SmallRandomP50, m.SmallRandomP99 = medians(m.SmallRandom)
	_, m.BigHotP50, m.BigHotP99 = medians(m.BigHot)
	_, m.SmallHotP50, m.SmallHotP99 = medians(m.SmallHot)
	m.RandomRatioP50 = m.BigRandomP50 / m.SmallRandomP50
	m.HotRatioP50 = m.BigHotP50 / m.SmallHotP50
	m.BigNodeCPU, m.BigWrkCPU = perRequest(m.BigRandom)
	m.SmallNodeCPU, m.SmallWrkCPU = perRequest(m.SmallRandom)
	m.RSSAfterLoad, m.RSSPeak = benchkit.RSS(pid)
	st := benchkit.ProcStatus(pid)
	m.AnonAfterLoad, m.FileAfterLoad = st["RssAnon:"], st["RssFile:"]
}

// perRequest returns the median CPU µs per request of the node and of wrk.
func perRequest(runs []wrkRun) (node, wrk float64) {
	var a, b []float64
	for _, r := range runs {
		a, b = append(a, r.NodeCPUUs/float64(r.Requests)), append(b, r.WrkCPUUs/float64(r.Requests))
	}
	return benchkit.Median(a), benchkit.Median(b)
}

// procCPU reads a process's CPU time (user + system) from /proc/<pid>/stat,
// in clock ticks of 10 ms (USER_HZ is 100 on Linux).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	_, rest, ok := strings.Cut(string(b), ") ") // the command name may hold spaces
	if !ok {
		return 0
	}
	f := strings.Fields(rest) // f[0] is field 3 (state): utime is field 14, stime 15
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
