package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
)

// pairTarget is one side of a side-by-side measurement: a URL on one
// server with its Host header and the status every answer must have.
type pairTarget struct {
	Label  string   `json:"label"`
	addr   string   // host:port
	host   string   // Host header
	path   string   // request path
	status int      // expected status, checked once before timing
	Runs   []wrkRun `json:"runs"`
	RPS    float64  `json:"rps"`    // median over rounds
	P50    float64  `json:"p50_us"` // median over rounds
	P99    float64  `json:"p99_us"` // median over rounds
}

// pairCase measures B against A: the same load on both, alternating within
// every round. Ratio is B's req/s over A's.
type pairCase struct {
	Name  string      `json:"name"`
	A     *pairTarget `json:"a"`
	B     *pairTarget `json:"b"`
	Ratio float64     `json:"ratio"`
}

// pairResult is a section made of pair cases.
type pairResult struct {
	Threads  int         `json:"threads"`
	Conns    int         `json:"conns"`
	Duration string      `json:"duration"`
	Rounds   int         `json:"rounds"`
	Note     string      `json:"note,omitempty"`
	Cases    []*pairCase `json:"cases"`
}

// runPairs checks every target's status once, warms each up, then runs
// cfg.rounds rounds in which every case measures A and B with the same
// wrk settings (A first in even rounds, B first in odd ones); it fills in
// the medians and ratios.
func runPairs(ctx context.Context, cfg config, section string, cases []*pairCase) (*pairResult, error) {
	opts := func(t *pairTarget, d time.Duration) wrkOpts {
		return wrkOpts{url: "http://" + t.addr + t.path, headers: []string{"Host: " + t.host},
			threads: cfg.threads, conns: cfg.conns, duration: d}
	}
	warm := 2 * time.Second
	if cfg.quick {
		warm = time.Second
	}
	for _, c := range cases {
		for _, t := range []*pairTarget{c.A, c.B} {
			if err := checkStatus("http://"+t.addr+t.path, t.host, t.status); err != nil {
				return nil, fmt.Errorf("%s: %w", t.Label, err)
			}
			if _, err := runWrk(ctx, cfg.workDir, opts(t, warm)); err != nil {
				return nil, fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	for round := range cfg.rounds {
		for _, c := range cases {
			order := []*pairTarget{c.A, c.B}
			if round%2 == 1 {
				order[0], order[1] = c.B, c.A // neither side always runs first
			}
			for _, t := range order {
				r, err := runWrk(ctx, cfg.workDir, opts(t, cfg.duration))
				if err != nil {
					return nil, err
				}
				t.Runs = append(t.Runs, r)
				log.Printf("%s round %d %-34s %8.0f req/s  p50 %6.0f µs  p99 %6.0f µs", section, round+1, c.Name+", "+t.Label, r.RPS, r.P50Us, r.P99Us)
			}
		}
	}
	for _, c := range cases {
		for _, t := range []*pairTarget{c.A, c.B} {
			t.RPS, t.P50, t.P99 = medians(t.Runs)
		}
		c.Ratio = c.B.RPS / c.A.RPS
	}
	return &pairResult{Threads: cfg.threads, Conns: cfg.conns, Duration: cfg.duration.String(), Rounds: cfg.rounds, Cases: cases}, nil
}

// checkStatus fetches url once, without following redirects, and wants
// status.
func checkStatus(url, host string, status int) error {
	resp, _, err := atolltest.Fetch(context.Background(), noRedirects, "GET", url, host)
	if err != nil {
		return err
	}
	if resp.StatusCode != status {
		return fmt.Errorf("GET %s (Host %s): %s, want %d", url, host, resp.Status, status)
	}
	return nil
}

// noRedirects answers a redirect itself, as wrk does.
var noRedirects = &http.Client{Timeout: 30 * time.Second, Transport: rawClient.Transport,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// The rules site's size: the yardstick.
const (
	staticRedirects  = 10000
	dynamicRedirects = 100
	headerBlocks     = 40
)

// rulesFiles writes the _redirects and _headers of the rules section:
// 10,000 static redirects, 100 dynamic ones (placeholders and a splat),
// and a _headers of 40 path blocks (121 header lines) with the headers
// sites commonly set.
func rulesFiles(dir string) error {
	var red strings.Builder
	for i := range dynamicRedirects {
		fmt.Fprintf(&red, "/dyn%d/:section/* /new%d/:section/:splat 301\n", i, i)
	}
	for i := range staticRedirects {
		fmt.Fprintf(&red, "/old/page-%d /new/page-%d 301\n", i, i)
	}
	// No block matches the measured file (/bench/1k.css): the case is "a
	// file no rule matches".
	var hdr strings.Builder
	hdr.WriteString("/assets/*\n  X-Frame-Options: DENY\n  X-Content-Type-Options: nosniff\n  Referrer-Policy: strict-origin-when-cross-origin\n" +
		"  Content-Security-Policy: default-src 'self'; img-src 'self' data:; script-src 'self'\n")
	for i := range headerBlocks - 1 {
		fmt.Fprintf(&hdr, "/section-%d/*\n  Cache-Control: public, max-age=%d\n  X-Robots-Tag: noindex\n  Link: </section-%d/style.css>; rel=preload; as=style\n", i, 60*(i+1), i)
	}
	if err := os.WriteFile(filepath.Join(dir, "_redirects"), []byte(red.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "_headers"), []byte(hdr.String()), 0o644)
}

// smallSite makes a folder holding the synthetic site's 1 KiB file at the
// same path, and returns it.
func smallSite(s *site, dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "bench", "1k.css"))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(dir, "bench"), 0o755); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "bench", "1k.css"), b, 0o644)
}

// deploySmall creates site name on n and deploys dir to it.
func deploySmall(ctx context.Context, n *atolltest.Node, name, dir string) error {
	if _, err := cli(ctx, n, "site", "create", name); err != nil {
		return err
	}
	out, err := cli(ctx, n, "deploy", dir, "--site", name)
	log.Printf("deploy of site %s: %s", name, firstLine(out))
	return err
}

// waitFeatureLevel waits at most limit until n's status reports the
// cluster at level or above.
func waitFeatureLevel(ctx context.Context, n *atolltest.Node, level int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		var st atoll.Status
		err := n.Call(ctx, "GET", "/v1/status", nil, &st)
		if err == nil && st.FeatureLevel >= level {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster feature level %d after %s, want %d (error: %v)", st.FeatureLevel, limit, level, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// benchRules measures a site with 10,100 redirects and a _headers against
// the same file on a site without rules, and the throughput of a matched
// static and dynamic 301.
func benchRules(ctx context.Context, cfg config, n *atolltest.Node, s *site) (*pairResult, error) {
	plain, err := smallSite(s, filepath.Join(cfg.workDir, "rules-plain"))
	if err != nil {
		return nil, err
	}
	withRules, err := smallSite(s, filepath.Join(cfg.workDir, "rules-site"))
	if err != nil {
		return nil, err
	}
	if err := rulesFiles(withRules); err != nil {
		return nil, err
	}
	// Rules are compiled only once the cluster is at the level that
	// brings them; the leader raises it soon after it is elected.
	if err := waitFeatureLevel(ctx, n, atoll.LevelFeatureLevels, 30*time.Second); err != nil {
		return nil, err
	}
	if err := deploySmall(ctx, n, "plain", plain); err != nil {
		return nil, err
	}
	if err := deploySmall(ctx, n, "rules", withRules); err != nil {
		return nil, err
	}
	t := func(label, host, path string, status int) *pairTarget {
		return &pairTarget{Label: label, addr: n.HTTPAddr, host: host + ".localhost", path: path, status: status}
	}
	file := t("site without rules", "plain", "/bench/1k.css", http.StatusOK)
	cases := []*pairCase{
		{Name: "1 KiB file", A: file, B: t("10,100 rules, none matches", "rules", "/bench/1k.css", http.StatusOK)},
		{Name: "matched rule (301)", A: t("static", "rules", "/old/page-5000", http.StatusMovedPermanently),
			B: t("dynamic", "rules", "/dyn99/a/b/c", http.StatusMovedPermanently)},
	}
	return runPairs(ctx, cfg, "rules", cases)
}

// benchMetrics measures the 1 KiB file on this binary (which always counts)
// against cfg.baseline, a binary built without metrics, each a single node
// serving the same site. Without -baseline it is skipped.
func benchMetrics(ctx context.Context, cfg config, s *site) (*pairResult, error) {
	if cfg.baseline == "" {
		return nil, errSkip{"no -baseline binary (build the commit before metrics landed, see bench/README.md)"}
	}
	dir, err := smallSite(s, filepath.Join(cfg.workDir, "metrics-site"))
	if err != nil {
		return nil, err
	}
	var nodes [2]*atolltest.Node
	for i, bin := range []string{cfg.baseline, cfg.atollBin} {
		c := cfg
		c.atollBin, c.workDir = bin, filepath.Join(cfg.workDir, fmt.Sprintf("metrics-%d", i))
		if err := os.MkdirAll(c.workDir, 0o755); err != nil {
			return nil, err
		}
		if nodes[i], err = startSingle(ctx, c); err != nil {
			return nil, err
		}
		defer nodes[i].Close()
		if err := deploySmall(ctx, nodes[i], "plain", dir); err != nil {
			return nil, err
		}
	}
	t := func(label string, n *atolltest.Node) *pairTarget {
		return &pairTarget{Label: label, addr: n.HTTPAddr, host: "plain.localhost", path: "/bench/1k.css", status: http.StatusOK}
	}
	res, err := runPairs(ctx, cfg, "metrics", []*pairCase{{Name: "1 KiB", A: t("baseline", nodes[0]), B: t("this binary", nodes[1])}})
	if res != nil {
		res.Note = "baseline " + cfg.baseline + ", measured " + cfg.atollBin
	}
	return res, err
}
