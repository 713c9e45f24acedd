package main

import (
	"fmt"
	"strings"

	"github.com/atoll-hosting/atoll/bench/benchkit"
)

// result is every figure of a run.
type result struct {
	Commit       string  `json:"commit"`
	LoadAtStart  string  `json:"load_at_start"`
	Sites        int     `json:"sites_asked"`
	Built        int     `json:"sites_built"`
	FilesPerSite int     `json:"files_per_site"`
	Blobs        int     `json:"distinct_blobs"`
	TotalSeconds float64 `json:"total_s"`

	Generate genStats `json:"generate"`       // through the per-site API
	Bulk     genStats `json:"generate_bulk"`  // through POST /v1/bulk/sites
	Retries  int64    `json:"deploy_retries"` // deploys the per-site path made again

	LookupSmallState       latency `json:"lookup_small_state"`         // 1,000 entries, before generation
	LookupBigStateSmallSet latency `json:"lookup_big_state_small_set"` // full state, the same 10 sites
	LookupBigStateAll      latency `json:"lookup_big_state_all"`       // full state, every site

	PropagationP50Ms float64 `json:"propagation_p50_ms"`
	PropagationP99Ms float64 `json:"propagation_p99_ms"`

	Nodes   []nodeFigures `json:"nodes"`
	IdleCPU []idleCPU     `json:"idle_cpu"`

	SnapshotBytes   int64   `json:"snapshot_bytes"`
	SnapshotSeconds float64 `json:"snapshot_s"`

	RepairSeconds    float64 `json:"repair_s"`
	CensusSeconds    float64 `json:"census_s"`
	LocalPassSeconds float64 `json:"local_pass_s"`
	Referenced       int     `json:"referenced_blobs"`

	JoinReadySeconds    float64 `json:"join_ready_s"`
	JoinServeAllSeconds float64 `json:"join_serve_all_s"`
	NewEdgeRSS          int64   `json:"new_edge_rss"`
	NewEdgeAnon         int64   `json:"new_edge_rss_anon"`
	NewEdgeFile         int64   `json:"new_edge_rss_file"`

	Restarts []restart `json:"restarts"`
}

type nodeFigures struct {
	ID       string `json:"id"`
	FSMBytes int64  `json:"fsm_bytes"`
	RSS      int64  `json:"rss"`
	Peak     int64  `json:"rss_peak"`
	Anon     int64  `json:"rss_anon"`
	File     int64  `json:"rss_file"`
}

// idleCPU is a node's CPU use while the cluster is idle (measureIdle).
type idleCPU struct {
	ID      string  `json:"id"`
	Percent float64 `json:"percent_of_a_core"`
}

type restart struct {
	ID      string  `json:"id"`
	Seconds float64 `json:"s"`
}

// markdown is the table of figures with their targets.
func (r *result) markdown() string {
	var b strings.Builder
	h := benchkit.Human
	if r.Built < r.Sites {
		fmt.Fprintf(&b, "\n**Built %d of the %d sites asked**: every figure below is for %d sites.\n", r.Built, r.Sites, r.Built)
	}
	fmt.Fprintf(&b, "\n%d sites x %d files (%d entries) over %d blobs, 3 core + 1 edge on loopback; commit %s, load average at start %s, whole run %.0f s.\n\n",
		r.Built, r.FilesPerSite, r.Built*r.FilesPerSite, r.Blobs, r.Commit, r.LoadAtStart, r.TotalSeconds)
	fmt.Fprintf(&b, "| figure | measured | target |\n| --- | --- | --- |\n")
	row := func(name, v, target string) { fmt.Fprintf(&b, "| %s | %s | %s |\n", name, v, target) }
	row("generation through the per-site API (64 at once)", fmt.Sprintf("%d sites in %.0f s (%.0f sites/s; %d deploys made again) %s", r.Generate.Built, r.Generate.Seconds, r.Generate.PerSec, r.Retries, r.Generate.Stopped), "")
	row("generation through POST /v1/bulk/sites", fmt.Sprintf("%d sites in %.0f s (%.0f sites/s) %s", r.Bulk.Built, r.Bulk.Seconds, r.Bulk.PerSec, r.Bulk.Stopped), "")
	for _, n := range r.Nodes {
		row("fsm.db of "+n.ID, h(n.FSMBytes), "")
	}
	row("snapshot (GET /v1/snapshot of core1)", fmt.Sprintf("%s in %.1f s", h(r.SnapshotBytes), r.SnapshotSeconds), "")
	row("new edge: ready", fmt.Sprintf("%.1f s", r.JoinReadySeconds), "")
	row("new edge: served every site", fmt.Sprintf("%.1f s", r.JoinServeAllSeconds), "< 60 s")
	for _, n := range r.Nodes {
		row("RSS of "+n.ID, fmt.Sprintf("%s (anon %s, file %s; peak %s)", h(n.RSS), h(n.Anon), h(n.File), h(n.Peak)), "< 1 GiB")
	}
	for _, c := range r.IdleCPU {
		row("CPU of "+c.ID+" while idle (20 s)", fmt.Sprintf("%.1f%% of a core", c.Percent), "")
	}
	row("RSS of the new edge", fmt.Sprintf("%s (anon %s, file %s)", h(r.NewEdgeRSS), h(r.NewEdgeAnon), h(r.NewEdgeFile)), "< 1 GiB")
	row("publish visible on every node", fmt.Sprintf("p50 %.1f ms, p99 %.1f ms", r.PropagationP50Ms, r.PropagationP99Ms), "p99 < 50 ms")
	row("edge lookup, 1,000-entry state", r.LookupSmallState.String(), "")
	row("edge lookup, full state, same 10 sites", fmt.Sprintf("%s (%.2fx)", r.LookupBigStateSmallSet, ratio(r.LookupBigStateSmallSet.P50Us, r.LookupSmallState.P50Us)), "<= 1.2x")
	row("edge lookup, full state, every site", fmt.Sprintf("%s (%.2fx)", r.LookupBigStateAll, ratio(r.LookupBigStateAll.P50Us, r.LookupSmallState.P50Us)), "<= 1.2x")
	row("repair census (leader)", fmt.Sprintf("%.1f s (%d blobs referenced)", r.CensusSeconds, r.Referenced), "< 60 s")
	row("local pass with GC (leader)", fmt.Sprintf("%.1f s", r.LocalPassSeconds), "")
	for _, rs := range r.Restarts {
		row("restart of "+rs.ID+" until ready", fmt.Sprintf("%.1f s", rs.Seconds), "")
	}
	return b.String()
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
