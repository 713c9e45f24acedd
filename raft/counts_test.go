package raft

import (
	"maps"
	"slices"
	"strconv"
	"testing"

	"github.com/atoll-hosting/atoll"
)

// walkCounts is what the counts must equal: a walk of every site's
// deploys, as the readers did before the counts existed.
func walkCounts(t *testing.T, f *FSM) (sites int, states map[atoll.DeployState]int, watched []string) {
	t.Helper()
	all, err := f.Sites()
	if err != nil {
		t.Fatal(err)
	}
	states = map[atoll.DeployState]int{}
	for _, s := range all {
		ds, err := f.Deploys(s.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			states[d.State]++
			if expiryWatched(d) {
				watched = append(watched, d.ID)
			}
		}
	}
	slices.Sort(watched)
	return len(all), states, watched
}

// checkCounts compares SiteCount, DeployCounts and ExpiryCandidates with a
// walk of the state.
func checkCounts(t *testing.T, f *FSM, when string) {
	t.Helper()
	sites, states, watched := walkCounts(t, f)
	if got := f.SiteCount(); got != sites {
		t.Errorf("%s: SiteCount %d, walk %d", when, got, sites)
	}
	if got, _ := f.DeployCounts(); !maps.Equal(got, states) {
		t.Errorf("%s: DeployCounts %v, walk %v", when, got, states)
	}
	var ids []string
	for _, d := range f.ExpiryCandidates() {
		ids = append(ids, d.ID)
		if d.Site == "" || d.Created.IsZero() {
			t.Errorf("%s: expiry candidate %+v without its site or creation time", when, d)
		}
	}
	if !slices.Equal(ids, watched) {
		t.Errorf("%s: ExpiryCandidates %v, walk %v", when, ids, watched)
	}
}

// TestStateCounts keeps the in-memory counts through every command that
// moves them (create, supersede, prune, fail, delete a site, a rejected
// command, a batch of many) and checks them against a walk after each
// step, after a snapshot restore, and after a reopen of the file (where
// they are computed from the state, as for a data dir of an older binary).
func TestStateCounts(t *testing.T) {
	h := newFSM(t)
	files := []atoll.File{{Path: "/index.html", Hash: hashOf("x")}}
	checkCounts(t, h.f, "empty")
	h.must(CreateSite{Name: "a", Created: t0, Retain: 2}, CreateSite{Name: "b", Created: t0}, CreateSite{Name: "c", Created: t0})
	checkCounts(t, h.f, "three sites")
	var cmds []Command
	for i := range 50 {
		cmds = append(cmds, CreateDeploy{ID: "up" + strconv.Itoa(i), Site: "b", Files: 1, Created: t0})
	}
	for i, resp := range h.f.ApplyBatch(h.logs(cmds...)) {
		if resp != nil {
			t.Fatalf("create %d: %v", i, resp)
		}
	}
	checkCounts(t, h.f, "one batch of 50 deploys")
	for i := range 4 { // retain 2: publishing the fourth prunes the first
		id := "r" + strconv.Itoa(i)
		h.readyDeploy("a", id, files)
		h.must(Publish{Deploy: id, At: t0})
		checkCounts(t, h.f, "published "+id)
	}
	h.must(FailDeploy{Deploy: "up0", Reason: "test"})
	checkCounts(t, h.f, "failed with no entries")
	h.must(CreateDeploy{ID: "held", Site: "c", Files: 2, Created: t0})
	for _, b := range BatchFiles("held", files) {
		h.must(b)
	}
	h.must(FailDeploy{Deploy: "held", Reason: "test"}) // below LevelFeatureLevels: keeps its entry
	checkCounts(t, h.f, "failed holding an entry")
	if c := h.f.ExpiryCandidates(); !slices.ContainsFunc(c, func(d atoll.Deploy) bool { return d.ID == "held" && d.Received == 1 }) {
		t.Errorf("ExpiryCandidates %v: without the failed deploy holding an entry", c)
	}
	if err := h.apply(CreateSite{Name: "a", Created: t0}); err == nil {
		t.Fatal("creating site a again: accepted")
	}
	if err := h.apply(Publish{Deploy: "up1", At: t0}); err == nil {
		t.Fatal("publishing an uploading deploy: accepted")
	}
	checkCounts(t, h.f, "after two rejected commands")
	h.must(DeleteSite{Name: "b"})
	checkCounts(t, h.f, "site b deleted")

	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	dst := newFSM(t)
	dst.must(CreateSite{Name: "other", Created: t0}, CreateDeploy{ID: "gone", Site: "other", Files: 1, Created: t0})
	if err := restore(dst.f, sink.Bytes()); err != nil {
		t.Fatal(err)
	}
	checkCounts(t, dst.f, "restored")
	if got := dst.f.RestoredAt(); got != h.f.AppliedIndex() {
		t.Errorf("RestoredAt %d, want the snapshot's index %d", got, h.f.AppliedIndex())
	}

	dir := h.f.dir
	want := h.f.SiteCount()
	h.f.Close()
	f, err := OpenFSM(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkCounts(t, f, "reopened")
	if f.SiteCount() != want || want != 2 {
		t.Errorf("reopened: SiteCount %d, before %d, want 2", f.SiteCount(), want)
	}
}
