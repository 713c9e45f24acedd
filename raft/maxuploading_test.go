package raft

import (
	"errors"
	"testing"

	"github.com/atoll-hosting/atoll"
)

// TestCreateDeployMaxUploading: from atoll.LevelFeatureLevels on, the FSM
// refuses a CreateDeploy that would take its site past MaxUploading
// deploys uploading; a resend of a recorded create is still a no-op, a
// deploy that leaves state uploading frees its place, other sites are
// apart; below the level the field means nothing, as on older nodes.
func TestCreateDeployMaxUploading(t *testing.T) {
	create := func(id, site string) CreateDeploy {
		return CreateDeploy{ID: id, Site: site, Files: 1, Created: t0, MaxUploading: 2}
	}
	h := newFSM(t)
	h.must(CreateSite{Name: "blog", Created: t0}, CreateSite{Name: "shop", Created: t0})
	h.must(create("a1", "blog"), create("a2", "blog"), create("a3", "blog"))
	if got := len(mustDeploys(t, h, "blog")); got != 3 {
		t.Fatalf("below the level: %d deploys, want all 3 (MaxUploading ignored)", got)
	}

	h = newFSM(t)
	h.must(SetFeatureLevel{Level: atoll.LevelFeatureLevels})
	h.must(CreateSite{Name: "blog", Created: t0}, CreateSite{Name: "shop", Created: t0})
	h.must(create("b1", "blog"), create("b2", "blog"))
	if err := h.apply(create("b3", "blog")); !errors.Is(err, atoll.ErrLimit) {
		t.Errorf("a third uploading deploy with MaxUploading 2: %v, want ErrLimit", err)
	}
	h.must(create("b2", "blog")) // a resend
	h.must(create("s1", "shop")) // another site
	if err := h.apply(CreateDeploy{ID: "b4", Site: "blog", Files: 1, Created: t0}); err != nil {
		t.Errorf("a create without MaxUploading: %v, want it recorded", err)
	}
	h.must(FailDeploy{Deploy: "b1", Reason: "test"}, FailDeploy{Deploy: "b4", Reason: "test"})
	if err := h.apply(create("b5", "blog")); err != nil {
		t.Errorf("after two deploys failed: %v, want room for one more", err)
	}
	if got := len(mustDeploys(t, h, "blog")); got != 4 {
		t.Errorf("blog has %d deploys, want 4 (b3 refused)", got)
	}
}

func mustDeploys(t *testing.T, h *fsmHarness, site string) []atoll.Deploy {
	t.Helper()
	ds, err := h.f.Deploys(site)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}
