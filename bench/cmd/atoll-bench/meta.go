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
	RSSPeak       int64   `json:"rss_peak"`
	RSSAfterLoad  int64   `json:"rss_after_lookups"`
	AnonAfterLoad int64   `json:"rss_anon_after_lookups"` // heap and stacks
	FileAfterLoad int64   `json:"rss_file_after_lookups"` // mapped files (bbolt)
	// Lookup latency on the edge: random paths over the whole manifest
	// (each request a manifest lookup unless the path is cached), and one
	// fixed path (hot), for the big and the small site.
	BigRandom   []wrkRun `json:"big_random"`
	SmallRandom []wrkRun `json:"small_random"`
	BigHot      []wrkRun `json:"big_hot"`
	SmallHot    []wrkRun `json:"small_hot"`
	// Medians.
	BigRandomP50, SmallRandomP50, BigRandomP99, SmallRandomP99 float64
	BigHotP50, SmallHotP50, BigHotP99, SmallHotP99             float64
	RandomRatioP50, HotRatioP50                                float64
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

func benchMeta(ctx context.Context, cfg config, n *atolltest.Node) (*metaResult, error) {
	r := &metaResult{Entries: cfg.metaFiles, Blobs: metaBlobs}
	// The blobs: small, distinct, uploaded once; every entry points at one.
	var hashes []string
	for i := range metaBlobs {
		b := []byte(fmt.Sprintf("<!doctype html><title>metadata scale %d</title>\n", i))
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		if err := n.Call(ctx, "PUT", "/v1/blobs/"+h, bytes.NewReader(b), nil); err != nil {
			return nil, err
		}
		hashes = append(hashes, h)
	}
	r.RSSBefore, _ = benchkit.RSS(n.Pid())
	create, total, size, err := metaDeploy(ctx, n, "meta-big", cfg.metaFiles, hashes)
	if err != nil {
		return nil, err
	}
	r.CreateSeconds, r.DeploySeconds, r.ManifestBytes = create.Seconds(), total.Seconds(), size
	r.RSSAfter, r.RSSPeak = benchkit.RSS(n.Pid())
	log.Printf("metadata: %d entries (%s of JSON) deployed in %.1fs (create %.1fs); RSS %s, peak %s",
		cfg.metaFiles, benchkit.Human(size), r.DeploySeconds, r.CreateSeconds, benchkit.Human(r.RSSAfter), benchkit.Human(r.RSSPeak))
	if _, _, _, err := metaDeploy(ctx, n, "meta-small", 1000, hashes); err != nil {
		return nil, err
	}

	d := 5 * time.Second
	rounds := 2
	if cfg.quick {
		d, rounds = 3*time.Second, 1
	}
	for round := range rounds {
		for _, c := range []struct {
			host    string
			entries int
			random  *[]wrkRun
			hot     *[]wrkRun
		}{
			{"meta-big.localhost", cfg.metaFiles, &r.BigRandom, &r.BigHot},
			{"meta-small.localhost", 1000, &r.SmallRandom, &r.SmallHot},
		} {
			// Latency, not throughput: a light load (4 connections).
			o := wrkOpts{url: "http://" + n.HTTPAddr + "/", headers: []string{"Host: " + c.host}, threads: 1, conns: 4, duration: d, script: randomPaths(c.entries)}
			run, err := runWrk(ctx, cfg.workDir, o)
			if err != nil {
				return nil, err
			}
			*c.random = append(*c.random, run)
			o.script, o.url = "", "http://"+n.HTTPAddr+metaPath(c.entries/2)
			hot, err := runWrk(ctx, cfg.workDir, o)
			if err != nil {
				return nil, err
			}
			*c.hot = append(*c.hot, hot)
			log.Printf("metadata round %d %-21s random p50 %5.0f µs p99 %5.0f µs (%6.0f req/s); hot p50 %5.0f µs p99 %5.0f µs",
				round+1, c.host, run.P50Us, run.P99Us, run.RPS, hot.P50Us, hot.P99Us)
		}
	}
	_, r.BigRandomP50, r.BigRandomP99 = medians(r.BigRandom)
	_, r.SmallRandomP50, r.SmallRandomP99 = medians(r.SmallRandom)
	_, r.BigHotP50, r.BigHotP99 = medians(r.BigHot)
	_, r.SmallHotP50, r.SmallHotP99 = medians(r.SmallHot)
	r.RandomRatioP50 = r.BigRandomP50 / r.SmallRandomP50
	r.HotRatioP50 = r.BigHotP50 / r.SmallHotP50
	r.RSSAfterLoad, r.RSSPeak = benchkit.RSS(n.Pid())
	st := benchkit.ProcStatus(n.Pid())
	r.AnonAfterLoad, r.FileAfterLoad = st["RssAnon:"], st["RssFile:"]
	return r, nil
}
