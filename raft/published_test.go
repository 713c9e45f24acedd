package raft

import (
	"bytes"
	"io"
	"slices"
	"testing"

	"github.com/atoll-hosting/atoll"
)

// TestPublishedSince follows the feed of publishes as an edge does: a
// zero cursor asks for a rescan; then each read returns the deploys
// published since the last one, in order, and nothing for a refused
// publish; a restore, or more publishes than the feed keeps, asks for a
// rescan again.
func TestPublishedSince(t *testing.T) {
	h := newFSM(t)
	files := []atoll.File{{Path: "/index.html", Hash: hashOf("x")}}
	h.must(CreateSite{Name: "a", Created: t0})
	for _, id := range []string{"d1", "d2", "d3"} {
		h.readyDeploy("a", id, files)
	}

	ids, cur, ok := h.f.PublishedSince(PublishCursor{})
	if ok || len(ids) != 0 {
		t.Fatalf("zero cursor: %v, ok %v; want a rescan", ids, ok)
	}
	h.must(Publish{Deploy: "d1", At: t0}, Publish{Deploy: "d2", At: t0})
	if err := h.apply(Publish{Deploy: "nope", At: t0}); err == nil {
		t.Fatal("publish of an unknown deploy applied")
	}
	ids, cur, ok = h.f.PublishedSince(cur)
	if want := []string{"d1", "d2"}; !ok || !slices.Equal(ids, want) {
		t.Fatalf("after two publishes: %v, ok %v; want %v", ids, ok, want)
	}
	if ids, _, ok := h.f.PublishedSince(cur); !ok || len(ids) != 0 {
		t.Fatalf("nothing new: %v, ok %v", ids, ok)
	}

	// A restore swaps the whole state: the feed cannot say what changed.
	snap, err := h.f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snap.(*fsmSnapshot).writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	if err := h.f.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	if _, cur, ok = h.f.PublishedSince(cur); ok {
		t.Fatal("after a restore the feed answered; want a rescan")
	}
	h.must(Publish{Deploy: "d3", At: t0})
	if ids, _, ok := h.f.PublishedSince(cur); !ok || !slices.Equal(ids, []string{"d3"}) {
		t.Fatalf("after the restore: %v, ok %v; want [d3]", ids, ok)
	}

	// A reader further behind than the feed keeps rescans.
	_, cur, _ = h.f.PublishedSince(PublishCursor{})
	var many []Command
	for i := range publishedFeedMax + 1 {
		many = append(many, Publish{Deploy: []string{"d1", "d2"}[i%2], At: t0})
	}
	for i, resp := range h.f.ApplyBatch(h.logs(many...)) {
		if resp != nil {
			t.Fatalf("publish %d: %v", i, resp)
		}
	}
	if _, _, ok := h.f.PublishedSince(cur); ok {
		t.Fatalf("%d publishes behind: the feed answered; want a rescan", publishedFeedMax+1)
	}
}
