package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/bench/benchkit"
)

// step is the figures at one edge count.
type step struct {
	Edges int `json:"edges"`
	Nodes int `json:"nodes"`
	// Leader is the node measured; LeaderLost says when another node led
	// at the end of the step (an election: the figures are not the leader's).
	Leader     string `json:"leader"`
	LeaderLost string `json:"leader_lost,omitempty"`
	// Leader, idle: CPU seconds per second, bytes written per second.
	IdleCPU float64 `json:"idle_cpu_s_per_s"`
	// Every edge together and the two other cores together, idle: CPU
	// seconds per second (on loopback they share the leader's cores).
	EdgesIdleCPU     float64 `json:"edges_idle_cpu_s_per_s"`
	FollowersIdleCPU float64 `json:"core_followers_idle_cpu_s_per_s"`
	IdleBytesPS      float64 `json:"idle_write_bytes_per_s"`
	RSSBytes         int64   `json:"leader_rss_bytes"`
	Goroutines       int     `json:"leader_goroutines"`
	// Leader CPU and bytes written over the publish run, per publish:
	// the idle rate is included (a publish replaces some of the idle
	// AppendEntries, so subtracting it would be wrong).
	PublishCPUms float64 `json:"publish_cpu_ms"`
	PublishBytes float64 `json:"publish_bytes"`
	BusyCPU      float64 `json:"publish_run_cpu_s_per_s"` // leader CPU seconds per second over the publish run
	// Publishes sent back to back, nobody polling: the leader's CPU and
	// bytes written per publish above its idle rate.
	MarginalCPUms float64   `json:"marginal_publish_cpu_ms"`
	MarginalBytes float64   `json:"marginal_publish_bytes"`
	BurstPerS     float64   `json:"burst_publishes_per_s"`
	PublishesPS   float64   `json:"publishes_per_s"` // achieved rate during the publish run
	VisibleP50ms  float64   `json:"visible_p50_ms"`  // publish visible on every node
	VisibleP99ms  float64   `json:"visible_p99_ms"`  //
	VisibleMaxms  float64   `json:"visible_max_ms"`  //
	PollEveryMs   float64   `json:"poll_every_ms"`   // each node's edge polled this often
	VisibleMs     []float64 `json:"visible_ms"`      //
	Profiles      []string  `json:"profiles,omitempty"`
}

// probe is site "prop" with two deploys, A and B, whose /probe.txt differ:
// publishing one and polling every node until it serves that content
// times how long a publish takes to reach every node.
type probe struct {
	ids map[string]string // "A", "B" -> deploy id
}

func newProbe(ctx context.Context, cfg config, leader *atolltest.Node) (*probe, error) {
	p := &probe{ids: map[string]string{}}
	if _, err := cliRun(ctx, leader, "site", "create", "prop"); err != nil {
		return nil, err
	}
	for i, v := range []string{"A", "B"} {
		dir := filepath.Join(cfg.workDir, "probe", v)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "probe.txt"), []byte("version "+v+"\n"), 0o644); err != nil {
			return nil, err
		}
		args := []string{"deploy", dir, "--site", "prop"}
		if i == 1 {
			args = append(args, "--no-publish")
		}
		out, err := cliRun(ctx, leader, args...)
		if err != nil {
			return nil, err
		}
		if p.ids[v] = atolltest.DeployID(out); p.ids[v] == "" {
			return nil, fmt.Errorf("no deploy id in %q", out)
		}
	}
	return p, nil
}

func cliRun(ctx context.Context, n *atolltest.Node, args ...string) (string, error) {
	res, err := n.RunCLI(ctx, n.AdminToken, args...)
	if err != nil {
		return "", err
	}
	return res.Stdout, res.Err()
}

// measure takes one step's figures; with profile it also saves the
// leader's CPU profiles, idle and under publishes.
func measure(ctx context.Context, cfg config, c *cluster, p *probe, edges int, profile bool) (st step, err error) {
	st = step{Edges: edges, Nodes: len(c.nodes)}
	time.Sleep(3 * time.Second) // joins settle: the last PutNode, the prefetch of the live deploy
	if st.Leader, err = c.findLeader(ctx); err != nil {
		return st, err
	}
	pid := c.leader.Pid()
	defer func() {
		// A figure of a node that stopped leading midway is not the
		// leader's: say so.
		if now, err := c.findLeader(ctx); err != nil || now != st.Leader {
			st.LeaderLost = fmt.Sprintf("%s led at the start, %s at the end (%v)", st.Leader, now, err)
			log.Printf("%d edges: the leader changed during the step: %s", edges, st.LeaderLost)
		}
	}()
	cpu0, w0, t0 := cpuSeconds(pid), writeBytes(pid), time.Now()
	cores0, edges0 := c.cpuByRole()
	var idleProf string
	if profile && cfg.profile > 0 {
		idleProf = saveProfile(ctx, cfg, c.leader, edges, "idle")
	} else {
		sleepCtx(ctx, cfg.idle)
	}
	el := time.Since(t0).Seconds()
	st.IdleCPU = (cpuSeconds(pid) - cpu0) / el
	st.IdleBytesPS = float64(writeBytes(pid)-w0) / el
	cores1, edges1 := c.cpuByRole()
	st.FollowersIdleCPU, st.EdgesIdleCPU = (cores1-cores0)/el, (edges1-edges0)/el
	st.RSSBytes = rssBytes(pid)
	st.Goroutines = goroutines(ctx, c.leader)

	var pubProf string
	var wg sync.WaitGroup
	if profile && cfg.profile > 0 {
		wg.Go(func() { pubProf = saveProfile(ctx, cfg, c.leader, edges, "publish") })
	}
	cpu0, w0, t0 = cpuSeconds(pid), writeBytes(pid), time.Now()
	if err := p.run(ctx, cfg, c, &st); err != nil {
		return st, err
	}
	el = time.Since(t0).Seconds()
	n := float64(len(st.VisibleMs))
	st.BusyCPU = (cpuSeconds(pid) - cpu0) / el
	st.PublishCPUms = (cpuSeconds(pid) - cpu0) / n * 1000
	st.PublishBytes = float64(writeBytes(pid)-w0) / n
	st.PublishesPS = n / el
	wg.Wait()
	if err := p.burst(ctx, cfg, c, &st); err != nil {
		return st, err
	}
	for _, f := range []string{idleProf, pubProf} {
		if f != "" {
			st.Profiles = append(st.Profiles, f)
		}
	}
	log.Printf("%d edges: leader idle %.3f CPU s/s (edges together %.3f, other cores %.3f), %.0f B/s written, RSS %.1f MiB, %d goroutines; publish run %.3f CPU s/s, %.2f ms CPU and %.0f B per publish; back to back %.1f/s, %.2f ms CPU and %.0f B per publish above idle; visible on all %d nodes p50 %.1f ms, p99 %.1f ms",
		edges, st.IdleCPU, st.EdgesIdleCPU, st.FollowersIdleCPU, st.IdleBytesPS, float64(st.RSSBytes)/(1<<20), st.Goroutines,
		st.BusyCPU, st.PublishCPUms, st.PublishBytes, st.BurstPerS, st.MarginalCPUms, st.MarginalBytes, st.Nodes, st.VisibleP50ms, st.VisibleP99ms)
	return st, nil
}

// run publishes A and B alternately cfg.publishes times (as rollbacks:
// one of the two is always older than the live one) and records when
// each became visible on every node. Each node's edge is polled every
// 1 ms + 0.2 ms per node, so the polls cost about the same at every
// cluster size (about 4,000 requests a second in all).
func (p *probe) run(ctx context.Context, cfg config, c *cluster, st *step) error {
	every := time.Millisecond + time.Duration(len(c.nodes))*200*time.Microsecond
	st.PollEveryMs = benchkit.Ms(every)
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true}}
	defer client.CloseIdleConnections()
	for i := range cfg.publishes {
		v := []string{"B", "A"}[i%2]
		want := "version " + v + "\n"
		pollCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		seen := make([]time.Duration, len(c.nodes))
		errs := make([]error, len(c.nodes))
		var wg sync.WaitGroup
		t0 := time.Now()
		for j, n := range c.nodes {
			wg.Go(func() {
				seen[j], errs[j] = pollUntil(pollCtx, client, "http://"+n.HTTPAddr+"/probe.txt", want, every, t0)
			})
		}
		err := c.leader.Call(ctx, "POST", "/v1/deploys/"+p.ids[v]+"/publish?rollback=true", nil, nil)
		wg.Wait()
		cancel()
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		var worst time.Duration
		for j := range c.nodes {
			if errs[j] != nil {
				return fmt.Errorf("node %s never served deploy %s: %w", c.nodes[j].ID, v, errs[j])
			}
			worst = max(worst, seen[j])
		}
		st.VisibleMs = append(st.VisibleMs, benchkit.Ms(worst))
	}
	st.VisibleP50ms = benchkit.Percentile(st.VisibleMs, 50)
	st.VisibleP99ms = benchkit.Percentile(st.VisibleMs, 99)
	st.VisibleMaxms = slices.Max(st.VisibleMs)
	return nil
}

// burst sends cfg.publishes publishes back to back, A and B alternately,
// nobody polling the nodes, and records the leader's CPU and bytes written
// per publish above the idle rate.
func (p *probe) burst(ctx context.Context, cfg config, c *cluster, st *step) error {
	pid := c.leader.Pid()
	cpu0, w0, t0 := cpuSeconds(pid), writeBytes(pid), time.Now()
	for i := range cfg.publishes {
		v := []string{"B", "A"}[i%2]
		if err := c.leader.Call(ctx, "POST", "/v1/deploys/"+p.ids[v]+"/publish?rollback=true", nil, nil); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	el := time.Since(t0).Seconds()
	n := float64(cfg.publishes)
	st.MarginalCPUms = ((cpuSeconds(pid) - cpu0) - st.IdleCPU*el) / n * 1000
	st.MarginalBytes = (float64(writeBytes(pid)-w0) - st.IdleBytesPS*el) / n
	st.BurstPerS = n / el
	return nil
}

// pollUntil GETs url (host prop.localhost) every period until the body is
// want, and returns when that was first seen, relative to t0.
func pollUntil(ctx context.Context, client *http.Client, url, want string, period time.Duration, t0 time.Time) (time.Duration, error) {
	var last string
	for ctx.Err() == nil {
		resp, b, err := atolltest.Fetch(ctx, client, "GET", url, "prop.localhost")
		if err == nil {
			if resp.StatusCode == 200 && string(b) == want {
				return time.Since(t0), nil
			}
			last = fmt.Sprintf("%d %q", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		sleepCtx(ctx, period)
	}
	return 0, fmt.Errorf("%v (last answer %s)", ctx.Err(), last)
}

// saveProfile takes a CPU profile of n over cfg.profile and returns the
// file it wrote ("" on failure, logged).
func saveProfile(ctx context.Context, cfg config, n *atolltest.Node, edges int, what string) string {
	secs := int(cfg.profile.Seconds())
	code, body, err := n.API(ctx, "GET", fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), n.AdminToken, "", nil)
	if err != nil || code != 200 {
		log.Printf("profile %s: %d %v", what, code, err)
		return ""
	}
	f := filepath.Join(cfg.outDir, fmt.Sprintf("fanout-leader-%dedges-%s.pprof", edges, what))
	if err := os.WriteFile(f, body, 0o644); err != nil {
		log.Printf("profile %s: %v", what, err)
		return ""
	}
	return f
}

// goroutines reads the leader's goroutine count from its pprof index.
func goroutines(ctx context.Context, n *atolltest.Node) int {
	_, body, err := n.API(ctx, "GET", "/debug/pprof/goroutine?debug=1", n.AdminToken, "", nil)
	if err != nil {
		return -1
	}
	// The first line is "goroutine profile: total N".
	line, _, _ := strings.Cut(string(body), "\n")
	v, _ := strconv.Atoi(strings.TrimSpace(line[strings.LastIndexByte(line, ' ')+1:]))
	return v
}

// cpuSeconds is utime+stime of pid from /proc/<pid>/stat.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// After the command: state is field 3, utime 14 and stime 15 (1-based).
	ut, _ := strconv.ParseFloat(f[11], 64)
	stm, _ := strconv.ParseFloat(f[12], 64)
	return (ut + stm) / clockTicks
}

// clockTicks is USER_HZ, 100 on every Linux Go supports.
const clockTicks = 100

// writeBytes is wchar of /proc/<pid>/io: bytes passed to write calls,
// sockets and files alike.
func writeBytes(pid int) int64 {
	return procField(fmt.Sprintf("/proc/%d/io", pid), "wchar:")
}

// rssBytes is VmRSS of pid.
func rssBytes(pid int) int64 { return procField(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:") << 10 }

func procField(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) >= 2 && fs[0] == key {
			v, _ := strconv.ParseInt(fs[1], 10, 64)
			return v
		}
	}
	return 0
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func numCPU() int { return runtime.NumCPU() }

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// table is the run as a markdown table.
func table(r result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nload average %s at start, %s at end; %d cores\n\n", r.Load, r.LoadEnd, r.Cores)
	if r.Assign != nil {
		fmt.Fprintf(&b, "edges joined with --join; the leader keeps %d direct (--max-direct-edges) and assigns the others to relays\n\n", *r.Assign)
	}
	if r.Relays > 0 {
		fmt.Fprintf(&b, "edges fed through %d relays (the first %d edges, Raft non-voters; the others fed edges)\n\n", r.Relays, r.Relays)
	}
	b.WriteString("| edges | nodes | visible p50 ms | p99 ms | max ms | leader idle CPU ms/s | all edges idle CPU ms/s | leader idle KiB/s written | leader CPU ms/s, publishing | CPU ms / publish | KiB / publish | back to back: publishes/s | CPU ms / publish above idle | KiB / publish above idle | RSS MiB | goroutines |\n")
	b.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "| %d | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f | %.1f | %.1f | %d |\n",
			s.Edges, s.Nodes, s.VisibleP50ms, s.VisibleP99ms, s.VisibleMaxms, s.IdleCPU*1000, s.EdgesIdleCPU*1000, s.IdleBytesPS/1024,
			s.BusyCPU*1000, s.PublishCPUms, s.PublishBytes/1024, s.BurstPerS, s.MarginalCPUms, s.MarginalBytes/1024, float64(s.RSSBytes)/(1<<20), s.Goroutines)
	}
	return b.String()
}
