//go:build linux

package main

// The end of a TestChaos run: back to R copies, every acknowledged deploy
// checked on every node, reads classified by the counting rule, the figures
// and the verdict.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
)

// chaosRepair is how the cluster came back to R copies.
type chaosRepair struct {
	secs        float64 // from the end of the faults to the first census with none under-replicated or missing
	first, last atoll.RepairReport
	censuses    int
	err         error
}

// awaitRepair runs a census on the leader once a second until every
// referenced blob is on its R owners (for at most 3 minutes).
func (c *chaos) awaitRepair(ctx context.Context, since time.Time) chaosRepair {
	var r chaosRepair
	deadline := time.Now().Add(3 * time.Minute)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if lead := c.leader(ctx); lead != nil {
			rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
			status, body, err := c.apiCall(rctx, lead, "POST", "/v1/repair", nil)
			cancel()
			var rep atoll.RepairReport
			switch {
			case err != nil:
				last = err
			case status != http.StatusOK:
				last = fmt.Errorf("POST /v1/repair on %s: %d %s", lead.ID, status, bytes.TrimSpace(body))
			default:
				if err := json.Unmarshal(body, &rep); err != nil {
					last = err
					break
				}
				if r.censuses == 0 {
					r.first = rep
				}
				r.censuses++
				r.last = rep
				if rep.UnderReplicated == 0 && rep.Missing == 0 {
					r.secs = time.Since(since).Seconds()
					return r
				}
				last = fmt.Errorf("%d referenced, %d under-replicated, %d missing", rep.Referenced, rep.UnderReplicated, rep.Missing)
			}
		}
		sleepCtx(ctx, time.Second)
	}
	r.secs = time.Since(since).Seconds()
	r.err = fmt.Errorf("not back to R copies %.0fs after the faults stopped: %v", r.secs, last)
	return r
}

// verifyDeploys checks every acknowledged deploy on every node: listed,
// and every file served at its preview host with the deployed bytes. It
// returns how many deploys fail that, how many file reads were checked, and
// the first failures.
func (c *chaos) verifyDeploys(ctx context.Context) (lost, files int, detail []string) {
	c.mu.Lock()
	acked := slices.Clone(c.acked)
	c.mu.Unlock()
	bad := map[string]bool{}
	var mu sync.Mutex
	fail := func(d *chaosDeploy, format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		bad[d.id] = true
		if len(detail) < 20 {
			detail = append(detail, fmt.Sprintf("deploy %s (%s #%d): ", d.id, d.site, d.seq)+fmt.Sprintf(format, args...))
		}
	}
	// Listed in each site's history on every node.
	for _, n := range c.nodes {
		for _, site := range c.sites {
			lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			status, body, err := c.apiCall(lctx, n, "GET", "/v1/sites/"+site+"/deploys", nil)
			cancel()
			var list atoll.DeployList
			if err == nil && status == http.StatusOK {
				err = json.Unmarshal(body, &list)
			} else if err == nil {
				err = fmt.Errorf("status %d", status)
			}
			listed := map[string]bool{}
			for _, d := range list.Deploys {
				listed[d.ID] = true
			}
			for _, d := range acked {
				if d.site == site && !listed[d.id] {
					fail(d, "not in the deploy list of %s on %s (%v)", site, n.ID, err)
				}
			}
		}
	}
	type job struct {
		d *chaosDeploy
		n *chaosNode
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for j := range jobs {
				d, n := j.d, j.n
				gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				status, body, err := c.apiCall(gctx, n, "GET", "/v1/deploys/"+d.id, nil)
				cancel()
				var got atoll.DeployResponse
				if err == nil && status == http.StatusOK {
					err = json.Unmarshal(body, &got)
				}
				switch {
				case err != nil || status != http.StatusOK:
					fail(d, "GET /v1/deploys/%s on %s: %d %v", d.id, n.ID, status, err)
				case got.State != "published" && got.State != "superseded":
					fail(d, "state %q on %s", got.State, n.ID)
				case got.Files != len(d.files):
					fail(d, "%d files on %s, want %d", got.Files, n.ID, len(d.files))
				}
				for p, want := range d.files {
					fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					status, body, err := c.get(fctx, n, d.id+"--"+d.site+".localhost", p, "")
					cancel()
					mu.Lock()
					files++
					mu.Unlock()
					switch {
					case err != nil:
						fail(d, "%s on %s: %v", p, n.ID, err)
					case status != http.StatusOK:
						fail(d, "%s on %s: status %d", p, n.ID, status)
					case atolltest.SHA256Hex(body) != want:
						fail(d, "%s on %s: wrong bytes", p, n.ID)
						c.wrong(fmt.Sprintf("final check: %s %s--%s%s: sha256 %s, want %s", n.ID, d.id, d.site, p, atolltest.SHA256Hex(body)[:16], want[:16]))
					}
				}
			}
		})
	}
	for _, d := range acked {
		for _, n := range c.nodes {
			jobs <- job{d, n}
		}
	}
	close(jobs)
	wg.Wait()
	return len(bad), files, detail
}

// verifyLive checks that every node serves the same live deploy of each
// site, made of bytes a deploy of the site put there.
func (c *chaos) verifyLive(ctx context.Context) (detail []string) {
	for _, site := range c.sites {
		var first string
		for _, n := range c.nodes {
			gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			status, body, err := c.get(gctx, n, site+".localhost", "/index.html", "")
			cancel()
			switch {
			case err != nil || status != http.StatusOK:
				detail = append(detail, fmt.Sprintf("%s.localhost on %s: %d %v", site, n.ID, status, err))
			case !c.expected(site, nil, true, "/index.html", atolltest.SHA256Hex(body)):
				detail = append(detail, fmt.Sprintf("%s.localhost on %s: bytes no deploy put there", site, n.ID))
			case first == "":
				first = string(body)
			case string(body) != first:
				detail = append(detail, fmt.Sprintf("%s.localhost: %s serves %q, another node %q", site, n.ID, body, first))
			}
		}
	}
	return detail
}

// faultedDuring reports whether node i was under a fault at some moment of
// [a, b].
func (c *chaos) faultedDuring(i int, a, b time.Time) bool {
	for _, f := range c.faults[i] {
		if f.from.Before(b) && (f.to.IsZero() || f.to.After(a)) {
			return true
		}
	}
	return false
}

// ackIndexes sets each acknowledged deploy's ackIndex: the highest applied
// index any node showed in its first sample taken after the
// acknowledgement. The node that answered the publish had applied it by
// then, and applied indexes never go back (the FSM keeps its own across
// restarts), so this bounds the publish's index from above. A node never
// sampled after the acknowledgement makes it unknown (MaxUint64: no read of
// that deploy counts).
func (c *chaos) ackIndexes() {
	for _, d := range c.acked {
		d.ackIndex = 0
		for i := range c.nodes {
			obs := c.obs[i]
			k := sort.Search(len(obs), func(k int) bool { return obs[k].start.After(d.ackedAt) })
			if k == len(obs) {
				d.ackIndex = math.MaxUint64
				break
			}
			d.ackIndex = max(d.ackIndex, obs[k].applied)
		}
	}
}

// classify says whether a read counts (see the package comment's rule) and,
// if not, why.
func (c *chaos) classify(r chaosRead) (counts bool, excuse string) {
	if c.faultedDuring(r.node+1, r.start, r.end) {
		return false, "the node read was under a fault"
	}
	obs := c.obs[r.node]
	k := sort.Search(len(obs), func(k int) bool { return !obs[k].start.Before(r.start) })
	applied := false
	for k--; k >= 0; k-- {
		if obs[k].end.After(r.start) {
			continue
		}
		applied = obs[k].applied >= r.deploy.ackIndex && !c.faultedDuring(r.node+1, obs[k].end, r.end)
		break
	}
	if !applied {
		return false, "the node had not been seen to apply the deploy yet"
	}
	for _, n := range c.cores() {
		if !c.faultedDuring(n.idx, r.start, r.end) {
			return true, ""
		}
	}
	return false, "no owner was up"
}

// report prints the figures of the run and fails the test for what broke.
func (c *chaos) report(dur time.Duration, repair chaosRepair, lost, files int, lostDetail, liveDetail []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ackIndexes()
	y := c.tally()
	c.t.Log("chaos figures:\n  " + strings.Join(c.figures(dur, repair, lost, files, y), "\n  "))
	c.verdict(repair, lost, lostDetail, liveDetail, y)
}

// chaosTally is what the reads of a run came to.
type chaosTally struct {
	ok, failed, wrong      int
	counted, countedFailed int            // reads that count by the rule, and those of them that failed
	excused                map[string]int // failed reads that do not count, by reason
	countedDetail          []string       // the first failed reads that count
	perNode                []int          // reads by node index
}

// tally classifies every read; c.mu is held.
func (c *chaos) tally() chaosTally {
	var y chaosTally
	y.excused = map[string]int{}
	y.perNode = make([]int, len(c.nodes))
	for _, r := range c.reads {
		y.perNode[r.node]++
		switch {
		case r.wrong:
			y.wrong++
		case r.failed():
			y.failed++
		default:
			y.ok++
		}
		counts, why := c.classify(r)
		if !counts {
			if r.failed() {
				y.excused[why]++
			}
			continue
		}
		y.counted++
		if r.failed() {
			y.countedFailed++
			if len(y.countedDetail) < 20 {
				host := r.deploy.id + "--" + r.deploy.site
				if r.live {
					host = r.deploy.site
				}
				what := r.err
				if what == "" {
					what = fmt.Sprintf("status %d", r.status)
				}
				y.countedDetail = append(y.countedDetail, fmt.Sprintf("at %.1fs %s %s.localhost%s (%s), took %s: %s",
					r.start.Sub(c.begin).Seconds(), c.nodes[r.node].ID, host, r.path, orDash(r.enc), r.end.Sub(r.start).Round(time.Millisecond), what))
			}
		}
	}
	return y
}

// figures are the lines of the run's report; c.mu is held.
func (c *chaos) figures(dur time.Duration, repair chaosRepair, lost, files int, y chaosTally) []string {
	mode := "network namespaces " + atolltest.Subnet + "0/24"
	if !c.net.Enabled() {
		mode = "LOOPBACK, no partition fault (" + c.net.Reason() + ")"
	}
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	add("seed %d, %s of faults, %s", c.seed, dur, mode)
	var fk []string
	for _, k := range chaosFaults {
		fk = append(fk, fmt.Sprintf("%d %s", c.faultCount[string(k)], k))
	}
	add("faults: %s", strings.Join(fk, ", "))
	if len(c.elections) > 0 {
		lo, hi := slices.Min(c.elections), slices.Max(c.elections)
		add("leader lost %d times; another core led after %s to %s", len(c.elections), lo.Round(10*time.Millisecond), hi.Round(10*time.Millisecond))
	}
	add("deploys: %d acknowledged, %d failed (%d files each, 3 new)", len(c.acked), c.deployFails, len(chaosPaths)-1)
	var calm, faulted []time.Duration // deploy times without and with a core under a fault
	for _, d := range c.acked {
		hit := false
		for _, n := range c.cores() {
			hit = hit || c.faultedDuring(n.idx, d.began, d.ackedAt)
		}
		if hit {
			faulted = append(faulted, d.ackedAt.Sub(d.began))
		} else {
			calm = append(calm, d.ackedAt.Sub(d.began))
		}
	}
	for _, g := range []struct {
		what string
		ts   []time.Duration
	}{{"no core under a fault", calm}, {"a core under a fault", faulted}} {
		if n := len(g.ts); n > 0 {
			slices.Sort(g.ts)
			add("  acknowledged deploys with %s: %d, took min %s, median %s, max %s", g.what, n,
				g.ts[0].Round(time.Millisecond), g.ts[n/2].Round(time.Millisecond), g.ts[n-1].Round(time.Millisecond))
		}
	}
	kinds := make([]string, 0, len(c.failMsgs))
	for k := range c.failMsgs {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return c.failMsgs[kinds[i]] > c.failMsgs[kinds[j]] })
	for i, k := range kinds {
		if i == maxFailKinds {
			add("  ... %d more kinds", len(kinds)-maxFailKinds)
			break
		}
		add("  %4d × %s", c.failMsgs[k], k)
	}
	var pn []string
	for i, n := range c.nodes {
		pn = append(pn, fmt.Sprintf("%s %d", n.ID, y.perNode[i]))
	}
	add("reads: %d (%s): %d right bytes, %d wrong bytes, %d failed", len(c.reads), strings.Join(pn, ", "), y.ok, y.wrong, y.failed)
	add("  reads that count (node live, connected, had applied the deploy): %d, of which failed: %d", y.counted, y.countedFailed)
	for _, why := range slices.Sorted(maps.Keys(y.excused)) {
		add("  failed but excused: %d (%s)", y.excused[why], why)
	}
	add("INVARIANT acknowledged deploys lost: %d of %d (each listed and %d file reads checked on %d nodes)", lost, len(c.acked), files, len(c.nodes))
	add("INVARIANT wrong bytes served: %d", len(c.wrongs))
	add("INVARIANT failed reads of published content from a live, connected node with an owner up: %d", y.countedFailed)
	if repair.err == nil {
		add("INVARIANT back to R copies %.1fs after the faults stopped (%d referenced blobs; first census: %d under-replicated, %d missing, %d pulled; %d censuses)",
			repair.secs, repair.last.Referenced, repair.first.UnderReplicated, repair.first.Missing, repair.first.Pulled, repair.censuses)
	} else {
		add("INVARIANT back to R copies: NO: %v", repair.err)
	}
	return lines
}

// verdict fails the test for every invariant broken, a harness problem, a
// race or panic in a node's log, or a run that did too little, and keeps
// the logs of a failed run; c.mu is held.
func (c *chaos) verdict(repair chaosRepair, lost int, lostDetail, liveDetail []string, y chaosTally) {
	t := c.t
	failedRun := false
	if lost > 0 {
		t.Errorf("%d acknowledged deploys lost:\n  %s", lost, strings.Join(lostDetail, "\n  "))
		failedRun = true
	}
	if len(c.wrongs) > 0 {
		t.Errorf("%d answers with wrong bytes:\n  %s", len(c.wrongs), strings.Join(c.wrongs[:min(20, len(c.wrongs))], "\n  "))
		failedRun = true
	}
	if y.countedFailed > 0 {
		t.Errorf("%d failed reads from live, connected nodes that had applied the deploy, with an owner up:\n  %s", y.countedFailed, strings.Join(y.countedDetail, "\n  "))
		failedRun = true
	}
	if repair.err != nil {
		t.Errorf("repair: %v", repair.err)
		failedRun = true
	}
	if len(liveDetail) > 0 {
		t.Errorf("live sites after recovery:\n  %s", strings.Join(liveDetail, "\n  "))
		failedRun = true
	}
	if len(c.harnessErrs) > 0 {
		t.Errorf("the run did not go as planned:\n  %s", strings.Join(c.harnessErrs, "\n  "))
		failedRun = true
	}
	// The nodes run the race-enabled binary: a data race or a panic in one
	// of them is a finding even if every answer was right.
	for _, n := range c.nodes {
		b, err := os.ReadFile(n.LogPath)
		if err != nil {
			continue
		}
		for _, bad := range []string{"WARNING: DATA RACE", "panic: ", "fatal error: "} {
			if k := bytes.Count(b, []byte(bad)); k > 0 {
				t.Errorf("%s's log has %d × %q", n.ID, k, bad)
				failedRun = true
			}
		}
	}
	// A run that did nothing proves nothing.
	if len(c.acked) == 0 || y.counted == 0 || len(c.faults) == 0 {
		t.Errorf("too little happened: %d acknowledged deploys, %d reads that count, faults on %d nodes", len(c.acked), y.counted, len(c.faults))
		failedRun = true
	}
	if failedRun {
		c.dumpLogsLocked()
	}
}

func (c *chaos) dumpLogs() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dumpLogsLocked()
}

// dumpLogsLocked keeps the node logs in a directory that outlives the test
// and prints their tails.
func (c *chaos) dumpLogsLocked() {
	keep, err := os.MkdirTemp("", fmt.Sprintf("atoll-chaos-%d-", c.seed))
	if err != nil {
		return
	}
	for _, n := range c.nodes {
		b, err := os.ReadFile(n.LogPath)
		if err != nil {
			continue
		}
		os.WriteFile(filepath.Join(keep, n.ID+".log"), b, 0o644)
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		c.t.Logf("--- %s log, last lines:\n%s", n.ID, strings.Join(lines[max(0, len(lines)-25):], "\n"))
	}
	os.WriteFile(filepath.Join(keep, "faults.log"), []byte(strings.Join(c.faultLog, "\n")+"\n"), 0o644)
	c.t.Logf("node logs and the fault log kept in %s", keep)
}
