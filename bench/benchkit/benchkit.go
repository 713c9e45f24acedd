// Package benchkit is what Atoll's whole-system benchmarks (atoll-bench,
// atoll-scale) share: starting real atoll nodes and clusters on loopback,
// waiting for them, reading a process's memory, and formatting figures.
//
// Every process it starts is added to Procs, which the command closes on
// return (and on Ctrl-C), so each is stopped by its pid. It never contacts
// anything but 127.0.0.1, and every wait is bounded.
package benchkit

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// Procs is every process the benchmark starts (see the package comment).
var Procs atolltest.Group

// NodeOpts is how one node of the benchmark runs.
type NodeOpts struct {
	Bootstrap bool
	Join      string // API URL of a node to join
	Role      string // "" (core) or "edge"
	Replicas  int
	Extra     []string // more `atoll server` flags
}

// Token is the admin token of every benchmark cluster; ClusterKey its
// cluster key.
const (
	Token      = "atl_bench_token_0123456789abcdef"
	ClusterKey = "bench-cluster-key-0123456789abcdef"
)

// APIClient allows long API calls: the metadata-scale deploy streams a
// manifest of a million entries in one request.
// Up to 256 idle connections per node: the scale generator calls the API
// from hundreds of goroutines at once.
var APIClient = &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{
	MaxIdleConns: 1024, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute,
}}

// StartNode starts `atoll server` with id name, its data dir and log under
// dir, adds it to Procs and waits until it answers /healthz.
func StartNode(ctx context.Context, bin, dir, name string, o NodeOpts) (*atolltest.Node, error) {
	n, err := NewNode(bin, dir, name, o)
	if err != nil {
		return nil, err
	}
	if err := LaunchNode(ctx, n); err != nil {
		return nil, err
	}
	return n, nil
}

// NewNode describes the node StartNode starts, without starting it.
func NewNode(bin, dir, name string, o NodeOpts) (*atolltest.Node, error) {
	flags := []string{"--log-level", "warn"}
	if o.Join != "" {
		flags = append(flags, "--join", o.Join)
	}
	if o.Role != "" {
		flags = append(flags, "--role", o.Role)
	}
	if o.Replicas > 0 {
		flags = append(flags, "--replicas", strconv.Itoa(o.Replicas))
	}
	return atolltest.NewNode(atolltest.NodeConfig{
		Bin: bin, ID: name, Data: filepath.Join(dir, name), Bootstrap: o.Bootstrap, AdminToken: Token,
		Flags: append(flags, o.Extra...), LogPath: filepath.Join(dir, name+".log"), APIClient: APIClient,
	})
}

// LaunchNode starts (or restarts) n, adds it to Procs and waits until it
// answers /healthz.
func LaunchNode(ctx context.Context, n *atolltest.Node) error {
	if err := n.Launch(); err != nil {
		return err
	}
	Procs.Add(n)
	if err := WaitReady(ctx, n, "/healthz", 30*time.Second); err != nil {
		n.Close()
		return fmt.Errorf("node %s: %w (log: %s)", n.ID, err, n.LogPath)
	}
	return nil
}

// WaitReady waits at most limit until path on n's API answers 200.
func WaitReady(ctx context.Context, n *atolltest.Node, path string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return n.WaitReady(ctx, path)
}

// WaitMembers waits until the node table lists want active nodes.
func WaitMembers(ctx context.Context, n *atolltest.Node, want int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		var st struct {
			Nodes []struct {
				ID    string `json:"id"`
				State string `json:"state"`
			} `json:"nodes"`
		}
		err := n.Call(ctx, "GET", "/v1/status", nil, &st)
		active := 0
		for _, nd := range st.Nodes {
			if nd.State == "" || nd.State == "active" {
				active++
			}
		}
		if err == nil && active >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d nodes active after %s (err %v)", active, want, limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// RSS reads a process's resident and peak resident memory from /proc.
func RSS(pid int) (cur, peak int64) {
	m := ProcStatus(pid)
	return m["VmRSS:"], m["VmHWM:"]
}

// ProcStatus reads the memory figures (bytes) of /proc/<pid>/status:
// VmRSS, VmHWM, RssAnon (heap, stacks), RssFile (mapped files, such as
// bbolt's mmap, reclaimable by the kernel).
func ProcStatus(pid int) map[string]int64 {
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

// Human formats a byte count.
func Human(n int64) string {
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

// Ms is d in milliseconds, to the microsecond.
func Ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Median is the median of v (0 for none).
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Percentile is the nearest-rank p-th percentile of v (0 for none).
func Percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// GitDescribe names the commit the benchmark runs on.
func GitDescribe() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
