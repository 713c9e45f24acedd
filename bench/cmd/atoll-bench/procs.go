package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procs tracks every process the benchmark starts, so that they are all
// stopped, by pid, whatever happens.
var procs processes

type processes struct {
	mu   sync.Mutex
	list []*exec.Cmd
}

func (p *processes) add(c *exec.Cmd) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, c)
}

// stop ends one process: SIGTERM, then SIGKILL after 5 s. The process runs
// in its own process group (Setpgid), so nginx's workers go with it.
func (p *processes) stop(c *exec.Cmd) {
	if c == nil || c.Process == nil {
		return
	}
	p.mu.Lock()
	for i, x := range p.list {
		if x == c {
			p.list = append(p.list[:i], p.list[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	pgid := c.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
}

func (p *processes) stopAll() {
	p.mu.Lock()
	list := append([]*exec.Cmd(nil), p.list...)
	p.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		p.stop(list[i])
	}
}

// start runs a command in its own process group, output to logPath.
func start(logPath string, name string, args ...string) (*exec.Cmd, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	c := exec.Command(name, args...)
	c.Stdout, c.Stderr = out, out
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	out.Close() // the child has its own descriptor
	procs.add(c)
	return c, nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func freePorts(n int) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for tries := 0; len(out) < n && tries < 100; tries++ {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if len(out) < n {
		return nil, fmt.Errorf("could not find %d free ports", n)
	}
	return out, nil
}

// ensureTools installs nginx and wrk from Debian when they are missing.
func ensureTools(ctx context.Context, install bool) error {
	var missing []string
	for _, tool := range []string{"nginx", "wrk"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if !install {
		return fmt.Errorf("missing %s (run without -install=false to apt-get install them)", strings.Join(missing, " "))
	}
	log.Printf("installing %s with apt-get", strings.Join(missing, " "))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	for _, args := range [][]string{{"update"}, append([]string{"install", "-y", "--no-install-recommends"}, missing...)} {
		c := exec.CommandContext(ctx, "apt-get", args...)
		c.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %v\n%s", args[0], err, tail(out, 2000))
		}
	}
	return nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// machine describes where the figures were taken.
type machine struct {
	Cores    int    `json:"cores"`
	CPU      string `json:"cpu"`
	MemBytes int64  `json:"mem_bytes"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	Nginx    string `json:"nginx"`
	Wrk      string `json:"wrk"`
	Load     string `json:"load_at_start"`
}

func machineInfo() machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemBytes = kb << 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.Load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if out, err := exec.Command("nginx", "-v").CombinedOutput(); err == nil {
		m.Nginx = strings.TrimSpace(strings.TrimPrefix(string(out), "nginx version: "))
	}
	if out, _ := exec.Command("wrk", "-v").CombinedOutput(); len(out) > 0 {
		m.Wrk = strings.Fields(string(out))[1]
	}
	return m
}

func gitDescribe() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// atollNode is one running `atoll server`.
type atollNode struct {
	cmd     *exec.Cmd
	data    string
	api     string // http://127.0.0.1:port
	edge    string // 127.0.0.1:port
	raft    string
	token   string
	bin     string
	logPath string
}

type nodeOpts struct {
	bootstrap bool
	join      string
	role      string
	replicas  int
	extra     []string
}

const benchToken = "atl_bench_token_0123456789abcdef"

func startNode(ctx context.Context, bin, dir, name string, o nodeOpts) (*atollNode, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	n := &atollNode{
		data:    filepath.Join(dir, name),
		api:     fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		edge:    fmt.Sprintf("127.0.0.1:%d", ports[1]),
		raft:    fmt.Sprintf("127.0.0.1:%d", ports[2]),
		token:   benchToken,
		bin:     bin,
		logPath: filepath.Join(dir, name+".log"),
	}
	args := []string{"server", "--id", name, "--data", n.data,
		"--api-addr", strings.TrimPrefix(n.api, "http://"), "--http-addr", n.edge, "--raft-addr", n.raft,
		"--admin-token", n.token, "--log-level", "warn"}
	if o.bootstrap {
		args = append(args, "--bootstrap")
	}
	if o.join != "" {
		args = append(args, "--join", o.join)
	}
	if o.role != "" {
		args = append(args, "--role", o.role)
	}
	if o.replicas > 0 {
		args = append(args, "--replicas", strconv.Itoa(o.replicas))
	}
	args = append(args, o.extra...)
	if n.cmd, err = start(n.logPath, bin, args...); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, n.api+"/healthz", 30*time.Second); err != nil {
		n.stop()
		return nil, fmt.Errorf("node %s: %w (log: %s)", name, err, n.logPath)
	}
	return n, nil
}

func (n *atollNode) stop() { procs.stop(n.cmd) }

// pid is the server's process id, for /proc.
func (n *atollNode) pid() int { return n.cmd.Process.Pid }

// cli runs an atoll client command against this node.
func (n *atollNode) cli(ctx context.Context, args ...string) (string, error) {
	c := exec.CommandContext(ctx, n.bin, args...)
	c.Env = append(os.Environ(), "ATOLL_API="+n.api, "ATOLL_TOKEN="+n.token)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("atoll %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// call makes one API call with the bench token and decodes a JSON answer
// into out (when not nil).
func (n *atollNode) call(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, n.api+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+n.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(tail(b, 500)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

var apiClient = &http.Client{Timeout: 10 * time.Minute}

// rss reads a process's resident and peak resident memory from /proc.
func rss(pid int) (cur, peak int64) {
	m := procStatus(pid)
	return m["VmRSS:"], m["VmHWM:"]
}

// procStatus reads the memory figures (bytes) of /proc/<pid>/status:
// VmRSS, VmHWM, RssAnon (heap, stacks), RssFile (mapped files, such as
// bbolt's mmap, reclaimable by the kernel).
func procStatus(pid int) map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[2] == "kB" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			out[fields[0]] = kb << 10
		}
	}
	return out
}

// waitHTTP polls url until it answers 200, for at most limit.
func waitHTTP(ctx context.Context, url string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := quickClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = fmt.Errorf("%s: %s", url, resp.Status)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready after %s: %v", limit, last)
}

var quickClient = &http.Client{Timeout: 5 * time.Second}

// startSingle starts the one-node cluster of the single-node sections.
func startSingle(ctx context.Context, cfg config) (*atollNode, error) {
	n, err := startNode(ctx, cfg.atollBin, cfg.workDir, "single", nodeOpts{bootstrap: true})
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, n.api+"/readyz", 30*time.Second); err != nil {
		n.stop()
		return nil, err
	}
	// The token is applied through Raft after the leader is elected.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := n.call(ctx, "GET", "/v1/sites", nil, nil); err == nil {
			break
		} else if time.Now().After(deadline) {
			n.stop()
			return nil, fmt.Errorf("single node API: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n, nil
}

// human formats a byte count.
func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
