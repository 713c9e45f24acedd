package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/bench/benchkit"
)

// diskBandwidth measures the file system's own durable write bandwidth in
// MB/s (10^6 bytes): sequential 1 MiB writes, each followed by fdatasync,
// like `dd bs=1M oflag=dsync`. Bounded by total bytes and 60 s.
func diskBandwidth(ctx context.Context, dir string, quick bool) (float64, error) {
	total := int64(256 << 20)
	if quick {
		total = 64 << 20
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, "probe"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i*7 + i>>8) // not zeros, in case the device compresses
	}
	start := time.Now()
	var written int64
	for written < total && time.Since(start) < time.Minute && ctx.Err() == nil {
		n, err := f.Write(buf)
		if err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		written += int64(n)
	}
	return float64(written) / 1e6 / time.Since(start).Seconds(), ctx.Err()
}

// deployResult is the deploy section's figures.
type deployResult struct {
	Replicas      int       `json:"replicas"`
	Files         int       `json:"files"`
	Bytes         int64     `json:"bytes"`
	FullSeconds   float64   `json:"full_deploy_s"`
	IngestMBps    float64   `json:"ingest_mb_s"`
	DiskMBps      float64   `json:"disk_mb_s"`
	IngestOfDisk  float64   `json:"ingest_of_disk"` // R x ingest / disk bandwidth
	NoChangeMs    float64   `json:"redeploy_unchanged_ms"`
	OneChangeMs   []float64 `json:"redeploy_one_change_ms"`
	OneChangeMedM float64   `json:"redeploy_one_change_median_ms"`
	// VariantsSeconds: from the full deploy's acknowledgement until every
	// node had made the compressed variants of its blobs (background
	// compression), which the other figures wait for.
	VariantsSeconds float64 `json:"variants_ready_s"`
	// CPUSeconds: user + system CPU time of every node process from just
	// before the full deploy until the variants were ready everywhere
	// (/proc/<pid>/stat): what ingest and compression cost the cluster.
	CPUSeconds float64 `json:"cpu_s"`
	// Right after the full deploy's publish, a sample of its text files
	// requested through every node with Accept-Encoding: br, gzip:
	// SampleAnswers answers, of which IdentityAnswers were uncompressed
	// (target 0).
	SampleAnswers   int `json:"sample_answers"`
	IdentityAnswers int `json:"identity_answers"`
}

// benchDeploy deploys the synthetic site through the CLI, end to end
// (hashing, manifest, uploads, publish), waits until every node of all has
// made its compressed variants (timed: they are made in the background
// after the deploy is acknowledged, and would otherwise take CPU from the
// figures that follow), then redeploys it unchanged and with one file
// changed.
func benchDeploy(ctx context.Context, cfg config, n *atolltest.Node, all []*atolltest.Node, s *site, diskMBps float64, replicas int) (*deployResult, error) {
	if _, err := cli(ctx, n, "site", "create", "synth"); err != nil {
		return nil, err
	}
	r := &deployResult{Replicas: replicas, Files: s.files, Bytes: s.bytes, DiskMBps: diskMBps}
	cpu0 := cpuSeconds(all)
	t0 := time.Now()
	out, err := cli(ctx, n, "deploy", s.dir, "--site", "synth")
	if err != nil {
		return nil, err
	}
	r.FullSeconds = time.Since(t0).Seconds()
	published := time.Now()
	var profs []func() error
	if cfg.variantsProfile != "" {
		for i, nd := range all {
			profs = append(profs, profile(ctx, nd, "profile", 30, filepath.Join(cfg.variantsProfile, fmt.Sprintf("variants-r%d-node%d.pprof", replicas, i+1))))
		}
	}
	r.IngestMBps = float64(s.bytes) / 1e6 / r.FullSeconds
	if diskMBps > 0 {
		r.IngestOfDisk = float64(replicas) * r.IngestMBps / diskMBps
	}
	log.Printf("deploy (R=%d): %d files, %s in %.2fs = %.1f MB/s (%.0f%% of R x bytes / disk bandwidth): %s",
		replicas, s.files, benchkit.Human(s.bytes), r.FullSeconds, r.IngestMBps, 100*r.IngestOfDisk, firstLine(out))
	if r.SampleAnswers, r.IdentityAnswers, err = identityAnswers(ctx, all, s, 200); err != nil {
		return nil, err
	}
	log.Printf("deploy (R=%d): right after the publish, %d of %d answers to clients accepting br and gzip were uncompressed (target 0)",
		replicas, r.IdentityAnswers, r.SampleAnswers)
	if _, err := waitCompressed(ctx, all); err != nil {
		return nil, err
	}
	r.VariantsSeconds = time.Since(published).Seconds()
	for _, prof := range profs {
		if err := prof(); err != nil {
			log.Printf("deploy: profile: %v", err)
		}
	}
	r.CPUSeconds = cpuSeconds(all) - cpu0
	logCompressCounters(ctx, all)
	log.Printf("deploy (R=%d): compressed variants made on every node %.2fs after the deploy; the nodes used %.1f CPU-s for the deploy and compression",
		replicas, r.VariantsSeconds, r.CPUSeconds)

	t0 = time.Now()
	if _, err := cli(ctx, n, "deploy", s.dir, "--site", "synth"); err != nil {
		return nil, err
	}
	r.NoChangeMs = benchkit.Ms(time.Since(t0))
	runs := 5
	if cfg.quick {
		runs = 3
	}
	for i := range runs {
		if _, err := s.touch(i + 1); err != nil {
			return nil, err
		}
		t0 = time.Now()
		out, err := cli(ctx, n, "deploy", s.dir, "--site", "synth")
		if err != nil {
			return nil, err
		}
		r.OneChangeMs = append(r.OneChangeMs, benchkit.Ms(time.Since(t0)))
		if i == 0 {
			log.Printf("redeploy, one file changed: %s", firstLine(out))
		}
	}
	r.OneChangeMedM = benchkit.Median(r.OneChangeMs)
	log.Printf("redeploy: unchanged %.0f ms, one file changed %.0f ms (median of %d)", r.NoChangeMs, r.OneChangeMedM, runs)
	return r, nil
}

// waitCompressed polls every node's status until none has blobs waiting
// for background compression, and returns how long that took.
func waitCompressed(ctx context.Context, nodes []*atolltest.Node) (time.Duration, error) {
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	for _, n := range nodes {
		for {
			var st struct {
				CompressPending *int `json:"compress_pending"`
			}
			if err := n.Call(ctx, "GET", "/v1/status", nil, &st); err != nil {
				return 0, fmt.Errorf("wait for compression: %w", err)
			}
			if st.CompressPending == nil || *st.CompressPending == 0 {
				break // an atoll without background compression reports none
			}
			select {
			case <-ctx.Done():
				return 0, fmt.Errorf("wait for compression: %w (%d blobs still pending on %s)", ctx.Err(), *st.CompressPending, n.ID)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return time.Since(t0), nil
}

// identityAnswers requests up to sample of the site's text files (spread
// over the site) through every node's edge, one at a time, as a client
// accepting br and gzip, and counts the answers and the uncompressed ones.
func identityAnswers(ctx context.Context, nodes []*atolltest.Node, s *site, sample int) (answers, identity int, err error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	step := max(1, len(s.text)/sample)
	for _, n := range nodes {
		before := identity
		for i := 0; i < len(s.text) && i/step < sample; i += step {
			req, err := http.NewRequestWithContext(ctx, "GET", "http://"+n.HTTPAddr+s.text[i], nil)
			if err != nil {
				return 0, 0, err
			}
			req.Host = "synth.localhost"
			req.Header.Set("Accept-Encoding", "br, gzip")
			resp, err := client.Do(req)
			if err != nil {
				return 0, 0, fmt.Errorf("uncompressed answers: %w", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return 0, 0, fmt.Errorf("uncompressed answers: GET %s on %s: %s", s.text[i], n.ID, resp.Status)
			}
			answers++
			if resp.Header.Get("Content-Encoding") == "" {
				identity++
			}
		}
		if identity > before {
			log.Printf("uncompressed answers: %d from %s", identity-before, n.ID)
		}
	}
	return answers, identity, nil
}

// logCompressCounters logs who compressed the blobs: each node's
// compressed, variants_received and variants_sent counters (GET
// /v1/status; absent from binaries that compress every copy).
func logCompressCounters(ctx context.Context, nodes []*atolltest.Node) {
	var parts []string
	for _, n := range nodes {
		var st struct {
			Compressed       int64 `json:"compressed"`
			VariantsReceived int64 `json:"variants_received"`
			VariantsSent     int64 `json:"variants_sent"`
		}
		if err := n.Call(ctx, "GET", "/v1/status", nil, &st); err != nil {
			return
		}
		parts = append(parts, fmt.Sprintf("%s compressed %d, received %d, sent %d", n.ID, st.Compressed, st.VariantsReceived, st.VariantsSent))
	}
	log.Printf("compression counters: %s", strings.Join(parts, "; "))
}

// cpuSeconds sums the user and system CPU time of the nodes' processes
// (/proc/<pid>/stat, in clock ticks of 1/100 s, Linux's USER_HZ).
func cpuSeconds(nodes []*atolltest.Node) float64 {
	var ticks int64
	for _, n := range nodes {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.Pid()))
		if err != nil {
			continue
		}
		// Fields after the command name, which may hold spaces: state is
		// the first, utime the 12th and stime the 13th.
		i := bytes.LastIndexByte(b, ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return float64(ticks) / 100
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
