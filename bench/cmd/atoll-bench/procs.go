package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// procs is every process the benchmark starts, so that they are all
// stopped, by pid, whatever happens (run closes it on return, main on an
// error).
var procs atolltest.Group

// startProcess runs name with args in its own process group (so that a
// stop reaches nginx's workers too), output to logPath, and adds it to
// procs.
func startProcess(logPath string, name string, args ...string) (*atolltest.Process, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own descriptor
	c := exec.Command(name, args...)
	c.Stdout, c.Stderr = out, out
	p, err := atolltest.StartProcess(c)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	procs.Add(p)
	return p, nil
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

// nodeOpts is how one node of the benchmark runs.
type nodeOpts struct {
	bootstrap bool
	join      string
	role      string
	replicas  int
	extra     []string
}

const benchToken = "atl_bench_token_0123456789abcdef"

// apiClient allows long API calls: the metadata-scale deploy streams a
// manifest of a million entries in one request.
var apiClient = &http.Client{Timeout: 10 * time.Minute}

// startNode starts `atoll server` with id name, its data dir and log under
// dir, adds it to procs and waits until it answers /healthz.
func startNode(ctx context.Context, bin, dir, name string, o nodeOpts) (*atolltest.Node, error) {
	flags := []string{"--log-level", "warn"}
	if o.join != "" {
		flags = append(flags, "--join", o.join)
	}
	if o.role != "" {
		flags = append(flags, "--role", o.role)
	}
	if o.replicas > 0 {
		flags = append(flags, "--replicas", strconv.Itoa(o.replicas))
	}
	n, err := atolltest.NewNode(atolltest.NodeConfig{
		Bin: bin, ID: name, Data: filepath.Join(dir, name), Bootstrap: o.bootstrap, AdminToken: benchToken,
		Flags: append(flags, o.extra...), LogPath: filepath.Join(dir, name+".log"), APIClient: apiClient,
	})
	if err != nil {
		return nil, err
	}
	if err := n.Launch(); err != nil {
		return nil, err
	}
	procs.Add(n)
	if err := waitReady(ctx, n, "/healthz", 30*time.Second); err != nil {
		n.Close()
		return nil, fmt.Errorf("node %s: %w (log: %s)", name, err, n.LogPath)
	}
	return n, nil
}

// waitReady waits at most limit until path on n's API answers 200.
func waitReady(ctx context.Context, n *atolltest.Node, path string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return n.WaitReady(ctx, path)
}

// cli runs an atoll client command against n with the admin token and
// returns its stdout.
func cli(ctx context.Context, n *atolltest.Node, args ...string) (string, error) {
	res, err := n.RunCLI(ctx, n.AdminToken, args...)
	if err != nil {
		return "", err
	}
	return res.Stdout, res.Err()
}

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

// startSingle starts the one-node cluster of the single-node sections.
func startSingle(ctx context.Context, cfg config) (*atolltest.Node, error) {
	n, err := startNode(ctx, cfg.atollBin, cfg.workDir, "single", nodeOpts{bootstrap: true})
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, n, "/readyz", 30*time.Second); err != nil {
		n.Close()
		return nil, err
	}
	// The token is applied through Raft after the leader is elected.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := n.Call(ctx, "GET", "/v1/sites", nil, nil); err == nil {
			break
		} else if time.Now().After(deadline) {
			n.Close()
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
