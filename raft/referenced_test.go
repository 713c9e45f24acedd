package raft

import (
	"context"
	"maps"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/repair"
)

// TestReferencedBlobs builds deploys in every state and checks that
// ReferencedBlobs answers what repair's walk through Sites, Deploys and
// Files answers: failed deploys name nothing, a blob named only by
// uploading deploys maps to true, and the walk carries on across its
// read transactions (two deploys larger than one chunk together).
func TestReferencedBlobs(t *testing.T) {
	h := newFSM(t)
	file := func(p, content string) atoll.File { return atoll.File{Path: p, Hash: hashOf(content)} }
	h.must(CreateSite{Name: "a", Created: t0}, CreateSite{Name: "b", Created: t0}, CreateSite{Name: "c", Created: t0})
	h.readyDeploy("a", "live1", []atoll.File{file("/1", "one"), file("/2", "two")})
	h.must(Publish{Deploy: "live1", At: t0})
	// Uploading: "two" is also live (false), "three" only here (true).
	h.must(CreateDeploy{ID: "upl1", Site: "a", Files: 3, Created: t0},
		AddFiles{Deploy: "upl1", Files: []atoll.File{file("/2", "two"), file("/3", "three")}})
	// Failed at the base level keeps its manifest, which names nothing.
	h.must(CreateDeploy{ID: "fail1", Site: "b", Files: 2, Created: t0},
		AddFiles{Deploy: "fail1", Files: []atoll.File{file("/4", "four")}},
		FailDeploy{Deploy: "fail1", Reason: "test"})
	big := manifest(referencedChunk/2 + 10)
	h.readyDeploy("c", "big1", big)
	h.readyDeploy("c", "big2", append(manifest(referencedChunk/2 + 20)[5:], file("/z", "last")))

	got, err := h.f.ReferencedBlobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, err := repair.WalkReferenced(context.Background(), fsmMeta{h.f})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("ReferencedBlobs: %d blobs, the walk through Files: %d", len(got), len(want))
	}
	for content, wantPending := range map[string]bool{"one": false, "two": false, "three": true, "last": false} {
		if pending, ok := got[hashOf(content)]; !ok || pending != wantPending {
			t.Errorf("blob %q: referenced %v, only pending %v; want referenced, only pending %v", content, ok, pending, wantPending)
		}
	}
	if _, ok := got[hashOf("four")]; ok {
		t.Errorf("a blob named only by a failed deploy is referenced")
	}
	if n := len(big) + 10 + 1 + 3; len(got) != n { // big2 adds 10 paths and /z
		t.Errorf("%d blobs referenced, want %d", len(got), n)
	}
}

// fsmMeta is the FSM as repair.Meta, for the walk through Files.
type fsmMeta struct{ *FSM }

func (fsmMeta) IsLeader() bool                 { return true }
func (fsmMeta) LeaderID() string               { return "n1" }
func (fsmMeta) LeaderChanged() <-chan struct{} { return nil }
