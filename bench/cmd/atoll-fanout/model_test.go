package main

import (
	"math"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9*math.Max(1, math.Abs(b)) }

func TestFitLine(t *testing.T) {
	tests := []struct {
		name   string
		xs, ys []float64
		a, b   float64
	}{
		{"exact", []float64{1, 2, 3}, []float64{3, 5, 7}, 1, 2},
		{"flat", []float64{3, 12, 52}, []float64{4, 4, 4}, 4, 0},
		{"one x", []float64{5, 5}, []float64{2, 4}, 3, 0},
		{"least squares", []float64{0, 1, 2, 3}, []float64{0, 2, 2, 4}, 0.2, 1.2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := fitLine(tt.xs, tt.ys)
			if !near(a, tt.a) || !near(b, tt.b) {
				t.Errorf("fitLine = %g + %g x, want %g + %g x", a, b, tt.a, tt.b)
			}
		})
	}
}

// syntheticRun makes a result whose leader idle CPU is 0.05 + 0.004 F s/s,
// CPU per publish 2 + 0.004/140 F s (one idle RPC per follower) and
// visible p50 10 + 2 F ms, F = 2 + edges.
func syntheticRun(edges ...int) result {
	r := result{Cores: 2}
	for _, e := range edges {
		f := followers(e)
		r.Steps = append(r.Steps, step{Edges: e, IdleCPU: 0.05 + 0.004*f, MarginalCPUms: 2 + 4/idleRPCsPerFollower*f,
			IdleBytesPS: 1000 + 100*f, VisibleP50ms: 10 + 2*f, VisibleP99ms: 20 + 4*f, EdgesIdleCPU: 0.02 * float64(e)})
	}
	return r
}

func TestFitModelRecoversTheLines(t *testing.T) {
	m, err := fitModel([]result{syntheticRun(1, 10, 30, 50), syntheticRun(1, 10, 30, 50)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"idle base", m.IdleBase, 0.05}, {"idle per follower", m.IdlePerFollower, 0.004},
		{"publish base", m.PubBase, 2}, {"publish per follower", m.PubPerFollower, 4 / idleRPCsPerFollower},
		{"p50 base", m.LatBase, 10}, {"p50 per follower", m.LatPerFollower, 2},
		{"edge idle", m.EdgeIdleCPU, 0.02},
	} {
		if !near(c.got, c.want) {
			t.Errorf("%s = %g, want %g", c.name, c.got, c.want)
		}
	}
	if got := len(m.Points); got != 4 {
		t.Fatalf("%d points, want 4 (two runs averaged per edge count)", got)
	}
	// At 30 edges the cluster uses 0.178 + 30 x 0.02 = 0.778 CPU s/s of 2
	// cores, above a quarter: saturated, left out of the fit, as 50 edges
	// (the lines still come out exact from the other two).
	for i, want := range []bool{false, false, true, true} {
		if got := m.Points[i].Saturated; got != want {
			t.Errorf("point %d edges: saturated = %v, want %v", m.Points[i].Edges, got, want)
		}
	}
}

func TestFitModelSkipsStepsWithAnElection(t *testing.T) {
	r := syntheticRun(1, 10, 30)
	r.Steps[2].IdleCPU = 0.001 // a follower's figures, after an election
	r.Steps[2].LeaderLost = "core1 led at the start, core2 at the end"
	m, err := fitModel([]result{r})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(m.Points); got != 2 {
		t.Errorf("%d points, want 2", got)
	}
	if !near(m.IdlePerFollower, 0.004) {
		t.Errorf("idle per follower = %g, want 0.004 (the step with an election left out)", m.IdlePerFollower)
	}
}

func TestFitModelNeedsTwoEdgeCounts(t *testing.T) {
	if _, err := fitModel([]result{syntheticRun(10), syntheticRun(10)}); err == nil {
		t.Fatal("fitModel with one edge count: no error")
	}
}

func TestRelayedFeedsBoundedNodes(t *testing.T) {
	m, err := fitModel([]result{syntheticRun(1, 10, 30, 50)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		edges, fanout int
		fed           float64
	}{
		{1000, 32, 2 + 32}, // ceil(1000/32) = 32 relays
		{100, 32, 2 + 4},
		{32, 32, 2 + 1},
	}
	for _, tt := range tests {
		p := m.relayed(tt.edges, tt.fanout)
		if p.Fed != tt.fed {
			t.Errorf("relayed(%d, %d) feeds %g nodes from the leader, want %g", tt.edges, tt.fanout, p.Fed, tt.fed)
		}
		d := m.direct(tt.edges)
		if p.IdleCPU > d.IdleCPU {
			t.Errorf("relayed(%d) leader idle CPU %g above direct %g", tt.edges, p.IdleCPU, d.IdleCPU)
		}
		// One more hop: the relay's own fan-out on top of the leader's.
		want := m.direct((tt.edges+tt.fanout-1)/tt.fanout).P50 + m.direct(min(tt.fanout, tt.edges)).P50 - m.LatBase
		if !near(p.P50, want) {
			t.Errorf("relayed(%d) p50 = %g, want %g", tt.edges, p.P50, want)
		}
	}
}

func TestReportMarksSaturation(t *testing.T) {
	m, err := fitModel([]result{syntheticRun(1, 10, 30, 50)})
	if err != nil {
		t.Fatal(err)
	}
	// 0.05 + 0.004 x 1002 = 4.06 CPU s/s on 2 cores: saturated.
	out := m.report(32)
	if !strings.Contains(out, "| 1000 | leader | 1002 | 4.06 |") || !strings.Contains(out, "saturated") {
		t.Errorf("report does not mark 1000 directly fed edges saturated:\n%s", out)
	}
}
