package raft

import (
	"maps"
	"strconv"
	"testing"

	"github.com/atoll-hosting/atoll"
)

// TestDeployCounts counts deploys in every state, over more records than
// one read transaction takes, and checks the counts against a count over
// each site's Deploys.
func TestDeployCounts(t *testing.T) {
	h := newFSM(t)
	files := []atoll.File{{Path: "/index.html", Hash: hashOf("x")}}
	h.must(CreateSite{Name: "a", Created: t0, Retain: 100}, CreateSite{Name: "b", Created: t0})
	var cmds []Command
	for i := range countChunk + 5 {
		cmds = append(cmds, CreateDeploy{ID: "up" + strconv.Itoa(i), Site: "b", Files: 1, Created: t0})
	}
	for i, resp := range h.f.ApplyBatch(h.logs(cmds...)) {
		if resp != nil {
			t.Fatalf("create %d: %v", i, resp)
		}
	}
	h.readyDeploy("a", "r1", files)
	h.readyDeploy("a", "r2", files)
	h.must(Publish{Deploy: "r1", At: t0}, Publish{Deploy: "r2", At: t0}, FailDeploy{Deploy: "up0", Reason: "test"})

	got, err := h.f.DeployCounts()
	if err != nil {
		t.Fatal(err)
	}
	want := map[atoll.DeployState]int{}
	for _, site := range []string{"a", "b"} {
		ds, err := h.f.Deploys(site)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			want[d.State]++
		}
	}
	if !maps.Equal(got, want) {
		t.Fatalf("DeployCounts %v, counted over Deploys %v", got, want)
	}
	if got[atoll.StateUploading] != countChunk+4 || got[atoll.StatePublished] != 1 || got[atoll.StateFailed] != 1 {
		t.Errorf("DeployCounts %v, want %d uploading, 1 published, 1 failed, 1 superseded", got, countChunk+4)
	}
}
