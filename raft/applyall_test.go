package raft

import (
	"errors"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
)

func TestApplyAllInOrder(t *testing.T) {
	t.Parallel()
	s := singleNode(t, t.TempDir())
	ctx := ctxT(t, 30*time.Second)
	files := manifest(3000) // several AddFiles batches
	batches := BatchFiles("d1", files)
	if len(batches) < 2 {
		t.Fatalf("want several batches, got %d", len(batches))
	}
	cmds := []Command{CreateSite{Name: "blog"}, CreateDeploy{ID: "d1", Site: "blog", Files: len(files)}}
	for _, b := range batches {
		cmds = append(cmds, b)
	}
	cmds = append(cmds, MarkReady{Deploy: "d1", Bytes: 1}, Publish{Deploy: "d1", At: time.Unix(1, 0).UTC()})
	if _, err := s.ApplyAll(ctx, cmds); err != nil {
		t.Fatalf("ApplyAll: %v", err)
	}
	site, err := s.Site("blog")
	if err != nil || site.Published != "d1" {
		t.Fatalf("Site = %+v, %v; want d1 published", site, err)
	}
	d, err := s.Deploy("d1")
	if err != nil || d.Received != len(files) || d.State != atoll.StatePublished {
		t.Fatalf("Deploy = %+v, %v; want %d files, published", d, err, len(files))
	}

	// A proposer that lost track of the outcome (a leader change midway:
	// node's ApplyPipelined, the bulk path) resends the same pipeline:
	// every command of it, MarkReady after the Publish included, is a no-op.
	if _, err := s.ApplyAll(ctx, cmds); err != nil {
		t.Fatalf("ApplyAll of the same pipeline again: %v", err)
	}
	if d2, err := s.Deploy("d1"); err != nil || d2 != d {
		t.Fatalf("after the resend: Deploy = %+v, %v; want it unchanged, %+v", d2, err, d)
	}

	// The first failure is returned; later commands are still applied.
	_, err = s.ApplyAll(ctx, []Command{Publish{Deploy: "nope"}, CreateSite{Name: "docs"}})
	if !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("ApplyAll with a failing first command: %v, want ErrNotFound", err)
	}
	if _, err := s.Site("docs"); err != nil {
		t.Errorf("the command after the failure was not applied: %v", err)
	}
}
