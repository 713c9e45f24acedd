package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/bench/benchkit"
)

// startProcess runs name with args in its own process group (so that a
// stop reaches nginx's workers too), output to logPath, and adds it to
// benchkit.Procs.
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
	benchkit.Procs.Add(p)
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

// cli runs an atoll client command against n with the admin token and
// returns its stdout.
func cli(ctx context.Context, n *atolltest.Node, args ...string) (string, error) {
	res, err := n.RunCLI(ctx, n.AdminToken, args...)
	if err != nil {
		return "", err
	}
	return res.Stdout, res.Err()
}

// startSingle starts the one-node cluster of the single-node sections.
func startSingle(ctx context.Context, cfg config) (*atolltest.Node, error) {
	n, err := benchkit.StartNode(ctx, cfg.atollBin, cfg.workDir, "single", benchkit.NodeOpts{Bootstrap: true})
	if err != nil {
		return nil, err
	}
	if err := benchkit.WaitReady(ctx, n, "/readyz", 30*time.Second); err != nil {
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
