package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
)

// The fan-out model of docs/FANOUT.md, fitted to measured runs.
//
// The leader feeds F = 2 + E followers directly (the two other cores and
// every edge). Each follower costs it a fixed rate of AppendEntries while
// idle (hashicorp/raft sends one every 1-2x CommitTimeout, 5-10 ms, plus a
// heartbeat every 100-200 ms) and a fixed amount per publish, so:
//
//	leader idle CPU (s/s)   = IdleBase + IdlePerFollower * F
//	leader CPU per publish  = PubBase + PubPerFollower * F      (ms, above idle;
//	                          PubPerFollower is one idle RPC's cost)
//	leader idle bytes (B/s) = BytesBase + BytesPerFollower * F
//	visible p50 (ms)        = LatBase + LatPerFollower * F
//
// each a least-squares line through the measured steps.
type model struct {
	Runs                        int
	Points                      []point
	IdleBase, IdlePerFollower   float64
	PubBase, PubPerFollower     float64
	BytesBase, BytesPerFollower float64
	LatBase, LatPerFollower     float64
	P99Base, P99PerFollower     float64
	EdgeIdleCPU                 float64 // CPU s/s of one edge, idle, fed directly
	Cores                       int
}

// point is the mean of the runs' steps at one edge count.
type point struct {
	Edges                               int
	IdleCPU, PubMs, IdleBytes, P50, P99 float64
	EdgeIdleCPU                         float64
	ClusterCPU                          float64 // leader, edges and cores together, idle, s/s
	Saturated                           bool    // ClusterCPU above saturatedShare of the cores: not fitted
}

// followers is how many nodes the leader feeds with edges edges.
func followers(edges int) float64 { return float64(2 + edges) }

// fitModel averages the steps of runs by edge count and fits the lines
// through the points where the machine was not saturated, leaving out the
// steps during which the leader changed.
func fitModel(runs []result) (model, error) {
	m := model{Runs: len(runs)}
	byEdges := map[int][]step{}
	var order []int
	for _, r := range runs {
		m.Cores = r.Cores
		for _, s := range r.Steps {
			if s.LeaderLost != "" {
				continue // another node led by the end: not the leader's figures
			}
			if _, ok := byEdges[s.Edges]; !ok {
				order = append(order, s.Edges)
			}
			byEdges[s.Edges] = append(byEdges[s.Edges], s)
		}
	}
	var xs, idle, pub, bytes, p50, p99, edgeCPU []float64
	for _, e := range order {
		p := meanPoint(e, byEdges[e], m.Cores)
		m.Points = append(m.Points, p)
		if p.Saturated {
			continue
		}
		xs = append(xs, followers(e))
		idle, pub, bytes = append(idle, p.IdleCPU), append(pub, p.PubMs), append(bytes, p.IdleBytes)
		p50, p99, edgeCPU = append(p50, p.P50), append(p99, p.P99), append(edgeCPU, p.EdgeIdleCPU)
	}
	if len(xs) < 2 {
		return m, fmt.Errorf("the model needs two edge counts at least measured on an unsaturated machine, got %d", len(xs))
	}
	m.IdleBase, m.IdlePerFollower = fitLine(xs, idle)
	// A publish adds one AppendEntries (with the entry) per follower to
	// the ones sent anyway: its per-follower cost is one idle RPC's. The
	// measured CPU above idle is within the noise beyond a few edges, so
	// only its base is taken from the points.
	m.PubPerFollower = m.IdlePerFollower / idleRPCsPerFollower * 1000
	for i := range xs {
		m.PubBase += (pub[i] - m.PubPerFollower*xs[i]) / float64(len(xs))
	}
	m.BytesBase, m.BytesPerFollower = fitLine(xs, bytes)
	m.LatBase, m.LatPerFollower = fitLine(xs, p50)
	m.P99Base, m.P99PerFollower = fitLine(xs, p99)
	m.EdgeIdleCPU, _ = fitLine(make([]float64, len(edgeCPU)), edgeCPU) // the mean
	return m, nil
}

// saturatedShare is the share of the machine's cores the whole cluster
// may use while idle for a point to count in the fit: above it, on a
// machine that also runs the edges, the load generator and other work,
// the leader gets the CPU that is left, not the CPU it needs, and latency
// is queueing.
const saturatedShare = 0.25

// idleRPCsPerFollower is how many AppendEntries the leader sends each
// follower a second with nothing to replicate: one every 1-2x
// CommitTimeout (5 ms: 133 a second on average) and a heartbeat every
// 100-200 ms (6.7 a second).
const idleRPCsPerFollower = 1/0.0075 + 1/0.150

// meanPoint is the mean of steps (one edge count).
func meanPoint(edges int, steps []step, cores int) point {
	p := point{Edges: edges}
	n := float64(len(steps))
	for _, s := range steps {
		p.IdleCPU += s.IdleCPU / n
		p.PubMs += s.MarginalCPUms / n
		p.IdleBytes += s.IdleBytesPS / n
		p.P50 += s.VisibleP50ms / n
		p.P99 += s.VisibleP99ms / n
		p.EdgeIdleCPU += s.EdgesIdleCPU / float64(s.Edges) / n
		p.ClusterCPU += (s.IdleCPU + s.EdgesIdleCPU + s.FollowersIdleCPU) / n
	}
	p.Saturated = cores > 0 && p.ClusterCPU > saturatedShare*float64(cores)
	return p
}

// fitLine is the least-squares line y = a + b x.
func fitLine(xs, ys []float64) (a, b float64) {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx, sy = sx+xs[i], sy+ys[i]
		sxx, sxy = sxx+xs[i]*xs[i], sxy+xs[i]*ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return sy / n, 0
	}
	b = (n*sxy - sx*sy) / d
	return (sy - b*sx) / n, b
}

// prediction is what the model says for one cluster shape.
type prediction struct {
	Edges    int
	Fed      float64 // nodes the leader feeds
	IdleCPU  float64 // leader, s/s
	PubMs    float64 // leader CPU per publish
	Bytes    float64 // leader idle bytes written per second
	P50, P99 float64 // publish visible on every node, ms
}

// direct is the model for edges fed by the leader, as today.
func (m model) direct(edges int) prediction {
	f := followers(edges)
	return prediction{Edges: edges, Fed: f, IdleCPU: m.IdleBase + m.IdlePerFollower*f, PubMs: m.PubBase + m.PubPerFollower*f,
		Bytes: m.BytesBase + m.BytesPerFollower*f, P50: m.LatBase + m.LatPerFollower*f, P99: m.P99Base + m.P99PerFollower*f}
}

// relayed is the model for edges fed through relays: the leader feeds the
// two other cores and ceil(edges/fanout) relays (edges themselves), each
// relay feeds at most fanout edges. A relay's stream to an edge pushes
// committed entries when there are any and a keep-alive otherwise, so its
// idle cost is neglected; a publish costs a relay what it costs the
// leader per follower (one encode per stream: an upper bound, the entries
// are encoded once). Latency: the leader's hop to fanout-or-fewer
// followers, plus one more hop of the same cost per follower.
func (m model) relayed(edges, fanout int) prediction {
	relays := (edges + fanout - 1) / fanout
	p := m.direct(relays)
	p.Edges = edges
	hop := m.direct(min(fanout, edges))
	p.P50 += hop.P50 - m.LatBase
	p.P99 += hop.P99 - m.P99Base
	return p
}

// report is the model as markdown: the fit, the measured points beside
// the model's values for them, and the predictions.
func (m model) report(fanout int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Fitted over %d run(s), %d cores, F = 2 + edges nodes fed by the leader, through the points where the whole cluster used at most %.0f%% of the cores while idle:\n\n", m.Runs, m.Cores, saturatedShare*100)
	fmt.Fprintf(&b, "- leader idle CPU = %.1f + %.2f x F ms/s\n", m.IdleBase*1000, m.IdlePerFollower*1000)
	fmt.Fprintf(&b, "- leader CPU per publish, above idle = %.2f + %.3f x F ms (%.0f µs per follower: one AppendEntries, the idle cost per follower / %.0f RPCs a second)\n",
		m.PubBase, m.PubPerFollower, m.PubPerFollower*1000, idleRPCsPerFollower)
	fmt.Fprintf(&b, "- leader idle bytes written = %.1f + %.2f x F KiB/s\n", m.BytesBase/1024, m.BytesPerFollower/1024)
	fmt.Fprintf(&b, "- publish visible on every node: p50 = %.1f + %.2f x F ms, p99 = %.1f + %.2f x F ms\n", m.LatBase, m.LatPerFollower, m.P99Base, m.P99PerFollower)
	fmt.Fprintf(&b, "- one edge fed directly, idle: %.1f ms/s of CPU\n\n", m.EdgeIdleCPU*1000)
	b.WriteString("| edges | whole cluster idle CPU ms/s | leader idle CPU ms/s: measured | model | CPU ms / publish: measured | model | idle KiB/s: measured | model | visible p50 ms: measured | model | p99 ms: measured | model |\n")
	b.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, p := range m.Points {
		d := m.direct(p.Edges)
		mark := ""
		if p.Saturated {
			mark = " (saturated, not fitted)"
		}
		fmt.Fprintf(&b, "| %d | %.0f%s | %.0f | %.0f | %.2f | %.2f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", p.Edges, p.ClusterCPU*1000, mark,
			p.IdleCPU*1000, d.IdleCPU*1000, p.PubMs, d.PubMs, p.IdleBytes/1024, d.Bytes/1024, p.P50, d.P50, p.P99, d.P99)
	}
	fmt.Fprintf(&b, "\nPredictions (relays: edges that feed at most %d edges each; the leader feeds the cores and the relays):\n\n", fanout)
	b.WriteString("| edges | feed | nodes the leader feeds | leader idle CPU (cores) | leader CPU ms / publish | leader idle MiB/s written | visible p50 ms | p99 ms |\n")
	b.WriteString("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, e := range []int{50, 100, 300, 1000} {
		for _, p := range []struct {
			name string
			p    prediction
		}{{"leader", m.direct(e)}, {"relays", m.relayed(e, fanout)}} {
			fmt.Fprintf(&b, "| %d | %s | %.0f | %.2f | %.1f | %.2f | %s | %s |\n", e, p.name, p.p.Fed, p.p.IdleCPU, p.p.PubMs, p.p.Bytes/(1<<20),
				m.latency(p.p.IdleCPU, p.p.P50), m.latency(p.p.IdleCPU, p.p.P99))
		}
	}
	return b.String()
}

// latency prints a predicted latency, or "saturated" when the leader's
// idle CPU alone exceeds the machine's cores: past that point the line
// means nothing (heartbeats are late, voters call elections).
func (m model) latency(idleCPU, ms float64) string {
	if m.Cores > 0 && idleCPU >= float64(m.Cores) {
		return "saturated"
	}
	return fmt.Sprintf("%.0f", math.Max(ms, 0))
}

// runModel reads result files and prints the model.
func runModel(files []string, fanout int) error {
	var runs []result
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var r result
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		runs = append(runs, r)
	}
	m, err := fitModel(runs)
	if err != nil {
		return err
	}
	fmt.Print(m.report(fanout))
	return nil
}
