package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/bench/benchkit"
)

// The wrk report script: one machine-readable line at the end of a run.
const wrkReport = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKJSON {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,\"errors\":%d,\"status_errors\":%d,\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,\"max_us\":%d}\n",
    summary.requests, summary.duration, summary.bytes, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
`

// wrkRun is one wrk run's figures.
type wrkRun struct {
	Requests     int64   `json:"requests"`
	DurationUs   int64   `json:"duration_us"`
	Bytes        int64   `json:"bytes"`
	Errors       int64   `json:"errors"`
	StatusErrors int64   `json:"status_errors"`
	P50Us        float64 `json:"p50_us"`
	P90Us        float64 `json:"p90_us"`
	P99Us        float64 `json:"p99_us"`
	MaxUs        float64 `json:"max_us"`
	RPS          float64 `json:"rps"`
	WrkCPUUs     float64 `json:"wrk_cpu_us"`            // wrk's own CPU time (user + system) over the run
	NodeCPUUs    float64 `json:"node_cpu_us,omitempty"` // the server's, where the section reads it
}

// wrkOpts is one wrk invocation.
type wrkOpts struct {
	url      string
	headers  []string
	threads  int
	conns    int
	duration time.Duration
	script   string // extra Lua (a request function), prepended to the report
}

func runWrk(ctx context.Context, work string, o wrkOpts) (wrkRun, error) {
	script := filepath.Join(work, "wrk-report.lua")
	if err := os.WriteFile(script, []byte(o.script+wrkReport), 0o644); err != nil {
		return wrkRun{}, err
	}
	args := []string{"-t", strconv.Itoa(o.threads), "-c", strconv.Itoa(o.conns),
		"-d", fmt.Sprintf("%ds", max(1, int(o.duration.Seconds()))), "--timeout", "5s", "-s", script}
	for _, h := range o.headers {
		args = append(args, "-H", h)
	}
	args = append(args, o.url)
	ctx, cancel := context.WithTimeout(ctx, o.duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "wrk", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkRun{}, fmt.Errorf("wrk %s: %v: %s", strings.Join(args, " "), err, tail(out, 500))
	}
	for line := range strings.Lines(string(out)) {
		if js, ok := strings.CutPrefix(line, "WRKJSON "); ok {
			var r wrkRun
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				return wrkRun{}, err
			}
			r.RPS = float64(r.Requests) / (float64(r.DurationUs) / 1e6)
			r.WrkCPUUs = float64((cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Microseconds())
			if r.Errors > 0 || r.StatusErrors > 0 {
				return r, fmt.Errorf("wrk %s: %d socket errors, %d non-2xx/3xx answers", o.url, r.Errors, r.StatusErrors)
			}
			return r, nil
		}
	}
	return wrkRun{}, fmt.Errorf("wrk printed no report: %s", tail(out, 500))
}

// nginxServer is the reference: nginx serving the same files from a plain
// folder.
type nginxServer struct {
	proc *atolltest.Process
	addr string
	conf string
}

const nginxConf = `# The reference configuration: what a hosting company would tune.
worker_processes auto;
daemon off;
master_process on;
pid {{dir}}/nginx.pid;
error_log {{dir}}/error.log warn;
events {
    worker_connections 4096;
}
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=200000 inactive=60s;
    open_file_cache_valid 60s;
    open_file_cache_min_uses 1;
    open_file_cache_errors on;
    keepalive_timeout 75s;
    keepalive_requests 100000000;
    etag on;
    gzip_static on;
    gzip_vary on;
    client_body_temp_path {{dir}}/tmp-body;
    proxy_temp_path {{dir}}/tmp-proxy;
    fastcgi_temp_path {{dir}}/tmp-fastcgi;
    uwsgi_temp_path {{dir}}/tmp-uwsgi;
    scgi_temp_path {{dir}}/tmp-scgi;
    server {
        listen {{addr}} reuseport;
        server_name _;
        root {{root}};
    }
}
`

func startNginx(ctx context.Context, work string, s *site) (*nginxServer, error) {
	dir := filepath.Join(work, "nginx")
	root := filepath.Join(work, "www")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := s.nginxRoot(root); err != nil {
		return nil, fmt.Errorf("nginx root: %w", err)
	}
	addr, err := atolltest.FreeAddr()
	if err != nil {
		return nil, err
	}
	n := &nginxServer{addr: addr, conf: filepath.Join(dir, "nginx.conf")}
	conf := strings.NewReplacer("{{dir}}", dir, "{{addr}}", n.addr, "{{root}}", root).Replace(nginxConf)
	if err := os.WriteFile(n.conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if n.proc, err = startProcess(filepath.Join(dir, "stderr.log"), "nginx", "-c", n.conf, "-p", dir); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := atolltest.WaitOK(wctx, http.DefaultClient, "http://"+n.addr+benchFiles[0].path); err != nil {
		n.proc.Close()
		return nil, fmt.Errorf("nginx: %w (see %s)", err, dir)
	}
	return n, nil
}

// serveCase is one serving measurement.
type serveCase struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Accept string `json:"accept_encoding,omitempty"`
	// Scrape has Atoll's /metrics read every second while wrk runs
	// against Atoll, as a Prometheus server would (at a high rate).
	Scrape   bool `json:"scrape,omitempty"`
	Encoding struct {
		Atoll string `json:"atoll"`
		Nginx string `json:"nginx"`
	} `json:"encoding"`
	BodyBytes struct {
		Atoll int `json:"atoll"`
		Nginx int `json:"nginx"`
	} `json:"body_bytes"`
	Atoll []wrkRun `json:"atoll"`
	Nginx []wrkRun `json:"nginx"`
	// Medians over the rounds, and Atoll/nginx.
	AtollRPS, NginxRPS, Ratio float64
	AtollP50, NginxP50        float64 // µs
	AtollP99, NginxP99        float64 // µs
	// Medians of the server's CPU time per request (µs): Atoll's node,
	// nginx's master and workers. Unlike req/s, it holds steady when
	// other processes load the machine.
	AtollCPU, NginxCPU float64
}

// Names of the serve cases the targets are checked on.
const (
	caseSmall   = "1 KiB"
	caseScraped = "1 KiB, /metrics scraped every 1 s"
	caseMedium  = "16 KiB"
	caseBrotli  = "30 KiB HTML, br+gzip"
)

type serveResult struct {
	Threads  int          `json:"threads"`
	Conns    int          `json:"conns"`
	Duration string       `json:"duration"`
	Rounds   int          `json:"rounds"`
	Cases    []*serveCase `json:"cases"`
}

// benchServe measures hot serving of the same files by Atoll and nginx,
// alternating within each round, with the same wrk settings.
func benchServe(ctx context.Context, cfg config, n *atolltest.Node, s *site) (*serveResult, error) {
	ngx, err := startNginx(ctx, cfg.workDir, s)
	if err != nil {
		return nil, err
	}
	defer ngx.proc.Close()
	host := "synth.localhost"
	cases := []*serveCase{
		{Name: caseSmall, Path: "/bench/1k.css"},
		// Right after the same file unscraped, so that the two
		// compare neighbouring slots of each round.
		{Name: caseScraped, Path: "/bench/1k.css", Scrape: true},
		{Name: caseMedium, Path: "/bench/16k.js"},
		{Name: "256 KiB", Path: "/bench/256k.js"},
		{Name: caseBrotli, Path: "/bench/30k.html", Accept: "br, gzip"},
		{Name: "30 KiB HTML, gzip", Path: "/bench/30k.html", Accept: "gzip"},
	}
	if err := checkServeCases(s, host, "http://"+n.HTTPAddr, "http://"+ngx.addr, cases); err != nil {
		return nil, err
	}
	opts := func(addr string, c *serveCase, d time.Duration) wrkOpts {
		h := []string{"Host: " + host}
		if c.Accept != "" {
			h = append(h, "Accept-Encoding: "+c.Accept)
		}
		return wrkOpts{url: "http://" + addr + c.Path, headers: h, threads: cfg.threads, conns: cfg.conns, duration: d}
	}
	warm := 2 * time.Second
	if cfg.quick {
		warm = time.Second
	}
	for _, c := range cases {
		for _, addr := range []string{n.HTTPAddr, ngx.addr} {
			if _, err := runWrk(ctx, cfg.workDir, opts(addr, c, warm)); err != nil {
				return nil, fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	for round := range cfg.rounds {
		for _, c := range cases {
			for _, who := range []string{"atoll", "nginx"} {
				addr := n.HTTPAddr
				if who == "nginx" {
					addr = ngx.addr
				}
				stop := func() {}
				if who == "atoll" && c.Scrape {
					stop = scrapeEvery(ctx, n.APIURL()+"/metrics", time.Second)
				}
				pid := n.Pid()
				if who == "nginx" {
					pid = ngx.proc.Pid()
				}
				cpu0 := procTreeCPU(pid)
				r, err := runWrk(ctx, cfg.workDir, opts(addr, c, cfg.duration))
				stop()
				if err != nil {
					return nil, err
				}
				r.NodeCPUUs = float64((procTreeCPU(pid) - cpu0).Microseconds())
				if who == "atoll" {
					c.Atoll = append(c.Atoll, r)
				} else {
					c.Nginx = append(c.Nginx, r)
				}
				log.Printf("serve round %d %-22s %-5s %8.0f req/s  p50 %6.0f µs  p99 %6.0f µs  server %5.1f µs CPU/req", round+1, c.Name, who, r.RPS, r.P50Us, r.P99Us, r.NodeCPUUs/float64(max(r.Requests, 1)))
			}
		}
	}
	for _, c := range cases {
		c.AtollRPS, c.AtollP50, c.AtollP99 = medians(c.Atoll)
		c.NginxRPS, c.NginxP50, c.NginxP99 = medians(c.Nginx)
		c.Ratio = c.AtollRPS / c.NginxRPS
		c.AtollCPU, _ = perRequest(c.Atoll)
		c.NginxCPU, _ = perRequest(c.Nginx)
	}
	return &serveResult{Threads: cfg.threads, Conns: cfg.conns, Duration: cfg.duration.String(), Rounds: cfg.rounds, Cases: cases}, nil
}

// checkServeCases checks, before anything is timed, that Atoll and nginx
// both answer each case with the file's bytes in an encoding it accepts,
// and records the encoding and body size each sent.
func checkServeCases(s *site, host, atollURL, nginxURL string, cases []*serveCase) error {
	for _, c := range cases {
		want, err := os.ReadFile(filepath.Join(s.dir, filepath.FromSlash(c.Path)))
		if err != nil {
			return err
		}
		if c.Encoding.Atoll, c.BodyBytes.Atoll, err = check(atollURL+c.Path, host, c.Accept, want); err != nil {
			return fmt.Errorf("atoll: %w", err)
		}
		if c.Encoding.Nginx, c.BodyBytes.Nginx, err = check(nginxURL+c.Path, host, c.Accept, want); err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
	}
	return nil
}

// scrapeEvery reads url every interval until the returned function is
// called, which waits for the scraper to end.
func scrapeEvery(ctx context.Context, url string, interval time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, _, err := atolltest.Fetch(ctx, rawClient, "GET", url, ""); err != nil && ctx.Err() == nil {
					log.Printf("scrape %s: %v", url, err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// procTreeCPU is the CPU time of process pid and of its children (nginx's
// workers), from /proc.
func procTreeCPU(pid int) time.Duration {
	t := procCPU(pid)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return t
	}
	for _, f := range strings.Fields(string(b)) {
		if child, err := strconv.Atoi(f); err == nil {
			t += procCPU(child)
		}
	}
	return t
}

func medians(runs []wrkRun) (rps, p50, p99 float64) {
	var a, b, c []float64
	for _, r := range runs {
		a, b, c = append(a, r.RPS), append(b, r.P50Us), append(c, r.P99Us)
	}
	return benchkit.Median(a), benchkit.Median(b), benchkit.Median(c)
}

// check fetches url once and compares the decoded body with want. It
// returns the Content-Encoding and the size of the body on the wire.
func check(url, host, accept string, want []byte) (string, int, error) {
	resp, body, err := atolltest.Fetch(context.Background(), rawClient, "GET", url, host, "Accept-Encoding", accept)
	if err != nil {
		return "", 0, err
	}
	if resp.StatusCode != 200 {
		return "", 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	enc := resp.Header.Get("Content-Encoding")
	plain, err := atolltest.Decode(enc, body)
	if err != nil {
		return "", 0, fmt.Errorf("GET %s: %s body: %w", url, enc, err)
	}
	if !bytes.Equal(plain, want) {
		return "", 0, fmt.Errorf("GET %s: body differs from the file (%d bytes, want %d)", url, len(plain), len(want))
	}
	return enc, len(body), nil
}

// rawClient leaves Content-Encoding alone.
var rawClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableCompression: true}}

// byName returns the case named name, or nil.
func (r *serveResult) byName(name string) *serveCase {
	for _, c := range r.Cases {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// scrapedRatio is the median over the rounds of the scraped 1 KiB case's
// req/s over the unscraped one's in the same round (the slot just
// before), and false when the run lacks either.
func (r *serveResult) scrapedRatio() (float64, bool) {
	plain, scraped := r.byName(caseSmall), r.byName(caseScraped)
	if plain == nil || scraped == nil {
		return 0, false
	}
	var ratios []float64
	for i := range min(len(plain.Atoll), len(scraped.Atoll)) {
		if plain.Atoll[i].RPS > 0 {
			ratios = append(ratios, scraped.Atoll[i].RPS/plain.Atoll[i].RPS)
		}
	}
	if len(ratios) == 0 {
		return 0, false
	}
	return benchkit.Median(ratios), true
}
