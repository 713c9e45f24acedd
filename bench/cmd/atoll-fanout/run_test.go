package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// TestRunSmallCluster runs the benchmark end to end on the real binary:
// 3 core + 1, then 2 edges, a few publishes, a short profile; every
// figure a step reports must be there.
func TestRunSmallCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 5 atoll processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	bin, err := atolltest.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cfg := config{atollBin: bin, outDir: out, workDir: t.TempDir(), keep: true, edges: []int{1, 2},
		publishes: 4, idle: time.Second, profile: time.Second, edgeFlags: []string{"--cache-size", "16MiB", "--compress-workers", "-1"}}
	err = run(ctx, cfg)
	procs.Close()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(out, "fanout-*.json"))
	if len(files) != 1 {
		t.Fatalf("result files %v, want one", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var r result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if got := len(r.Steps); got != 2 {
		t.Fatalf("%d steps, want 2", got)
	}
	for i, s := range r.Steps {
		if want := []int{1, 2}[i]; s.Edges != want || s.Nodes != 3+want {
			t.Errorf("step %d: %d edges, %d nodes; want %d, %d", i, s.Edges, s.Nodes, want, 3+want)
		}
		if len(s.VisibleMs) != cfg.publishes || s.VisibleP99ms <= 0 {
			t.Errorf("step %d: %d publishes timed (p99 %v ms), want %d", i, len(s.VisibleMs), s.VisibleP99ms, cfg.publishes)
		}
		if s.IdleCPU <= 0 || s.IdleBytesPS <= 0 || s.RSSBytes <= 0 || s.Goroutines <= 0 || s.BurstPerS <= 0 || s.Leader == "" {
			t.Errorf("step %d: a leader figure is missing: %+v", i, s)
		}
	}
	if last := r.Steps[1]; len(last.Profiles) != 2 {
		t.Errorf("profiles at the last step: %v, want idle and publish", last.Profiles)
	}
	// The fit leaves out the steps where the cluster was busy while idle,
	// which depends on the machine's load (model_test.go covers the fit):
	// here the result only has to be readable by it.
	if _, err := fitModel([]result{r}); err != nil && !strings.Contains(err.Error(), "unsaturated machine") {
		t.Errorf("the model does not read the run: %v", err)
	}
}
