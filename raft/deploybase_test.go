package raft

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll"
)

// seedBase builds, at atoll.LevelDeployBase, site blog with deploys live
// (published, manifest(5)), older (superseded, manifest(2)), up (uploading)
// and bad (failed), and site shop with deploy shop1 (ready).
func seedBase(h *fsmHarness) {
	h.t.Helper()
	h.must(SetFeatureLevel{Level: atoll.LevelDeployBase},
		CreateSite{Name: "blog", Created: t0}, CreateSite{Name: "shop", Created: t0})
	h.readyDeploy("blog", "older", manifest(2))
	h.must(Publish{Deploy: "older", At: t0})
	h.readyDeploy("blog", "live", manifest(5))
	h.must(Publish{Deploy: "live", At: t0},
		CreateDeploy{ID: "up", Site: "blog", Files: 3, Created: t0},
		CreateDeploy{ID: "bad", Site: "blog", Files: 3, Created: t0},
		FailDeploy{Deploy: "bad", Reason: "gave up"})
	h.readyDeploy("shop", "shop1", manifest(2))
}

// files returns deploy id's manifest.
func (h *fsmHarness) files(id string) []atoll.File {
	h.t.Helper()
	var out []atoll.File
	if err := h.f.Files(id, func(f atoll.File) error { out = append(out, f); return nil }); err != nil {
		h.t.Fatalf("Files(%q): %v", id, err)
	}
	return out
}

// TestCreateDeployFromBase: the new manifest starts as the base's less
// Remove, only the difference follows in AddFiles, and the complete deploy
// is the manifest a full create would have made; a resend of the create,
// also after the base went, is a no-op.
func TestCreateDeployFromBase(t *testing.T) {
	h := newFSM(t)
	seedBase(h)
	base := manifest(5)
	changed := atoll.File{Path: base[1].Path, Hash: hashOf("new content")}
	added := atoll.File{Path: "/g/new.html", Hash: hashOf("/g/new.html")}
	create := CreateDeploy{ID: "next", Site: "blog", Files: 5, Created: t0, Base: "live",
		Remove: []string{base[1].Path, base[3].Path}} // changed, deleted
	h.must(create)
	d := h.deploy("next")
	if d.Base != "live" || d.Received != 3 || d.Files != 5 || d.State != atoll.StateUploading {
		t.Fatalf("deploy after a create from a base: %+v, want base live, 3 of 5 received, uploading", d)
	}
	want := []atoll.File{base[0], base[2], base[4]}
	if got := h.files("next"); !slices.Equal(got, want) {
		t.Fatalf("manifest copied from the base: %v, want %v", got, want)
	}
	if err := h.apply(MarkReady{Deploy: "next", Bytes: 5}); !errors.Is(err, atoll.ErrConflict) {
		t.Fatalf("MarkReady before the difference arrived: %v, want ErrConflict", err)
	}
	h.must(AddFiles{Deploy: "next", Files: []atoll.File{changed, added}}, MarkReady{Deploy: "next", Bytes: 5})
	want = []atoll.File{base[0], changed, base[2], base[4], added}
	if got := h.files("next"); !slices.Equal(got, want) {
		t.Fatalf("complete manifest: %v, want %v", got, want)
	}
	if got := h.files("live"); !slices.Equal(got, base) {
		t.Errorf("the base's manifest changed: %v", got)
	}

	before := dump(t, h.f)
	h.must(create) // a resend after the deploy moved on
	if got := dump(t, h.f); got != before {
		t.Errorf("a resent create changed the state:\n%s\nwant\n%s", got, before)
	}
	h.must(Publish{Deploy: "next", At: t0}, UpdateSite{Name: "blog", Retain: 2})
	h.readyDeploy("blog", "n2", manifest(1))
	h.must(Publish{Deploy: "n2", At: t0})
	if _, err := h.f.Deploy("live"); !errors.Is(err, atoll.ErrNotFound) {
		t.Fatalf("live should have been pruned: %v", err)
	}
	after := dump(t, h.f)
	h.must(create) // the base is gone: still the same deploy, so a no-op
	if got := dump(t, h.f); got != after {
		t.Errorf("a resent create changed the state after its base was pruned:\n%s\nwant\n%s", got, after)
	}
}

// TestCreateDeployBaseRefused: every base the FSM cannot copy from, and
// every malformed Remove, is refused before anything is written.
func TestCreateDeployBaseRefused(t *testing.T) {
	p := func(i int) string { return manifest(5)[i].Path }
	cases := []struct {
		name string
		cmd  CreateDeploy
		want error
	}{
		{"base of another site", CreateDeploy{Base: "shop1", Files: 2}, atoll.ErrConflict},
		{"failed base", CreateDeploy{Base: "bad", Files: 3}, atoll.ErrConflict},
		{"uploading base", CreateDeploy{Base: "up", Files: 3}, atoll.ErrConflict},
		{"pruned or unknown base", CreateDeploy{Base: "gone", Files: 3}, atoll.ErrConflict},
		{"remove not sorted", CreateDeploy{Base: "live", Files: 5, Remove: []string{p(3), p(1)}}, atoll.ErrInvalid},
		{"remove twice", CreateDeploy{Base: "live", Files: 5, Remove: []string{p(1), p(1)}}, atoll.ErrInvalid},
		{"remove a path not in the base", CreateDeploy{Base: "live", Files: 5, Remove: []string{"/nope.html"}}, atoll.ErrInvalid},
		{"remove without a base", CreateDeploy{Files: 5, Remove: []string{p(1)}}, atoll.ErrInvalid},
		{"keeps more than it declares", CreateDeploy{Base: "live", Files: 3, Remove: []string{p(1)}}, atoll.ErrInvalid},
		{"id taken with another base", CreateDeploy{ID: "up", Base: "live", Files: 3}, atoll.ErrExists},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFSM(t)
			seedBase(h)
			if tc.cmd.ID == "" {
				tc.cmd.ID = "next"
			}
			tc.cmd.Site, tc.cmd.Created = "blog", t0
			before := dump(t, h.f)
			err := h.apply(tc.cmd)
			if !errors.Is(err, tc.want) {
				t.Fatalf("apply %+v: %v, want error wrapping %v", tc.cmd, err, tc.want)
			}
			t.Logf("refused: %v", err)
			if after := dump(t, h.f); after != before {
				t.Errorf("refused command changed the state:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestCreateDeployBaseBelowLevel: below atoll.LevelDeployBase Base and
// Remove mean nothing, as to an older node (which drops them): the deploy
// starts empty, the whole manifest follows, and a full resend agrees.
func TestCreateDeployBaseBelowLevel(t *testing.T) {
	h := newFSM(t)
	h.must(SetFeatureLevel{Level: atoll.LevelFeatureLevels}, CreateSite{Name: "blog", Created: t0})
	h.readyDeploy("blog", "live", manifest(3))
	create := CreateDeploy{ID: "next", Site: "blog", Files: 3, Created: t0, Base: "live", Remove: []string{"/not/checked"}}
	h.must(create)
	if d := h.deploy("next"); d.Base != "" || d.Received != 0 {
		t.Fatalf("below level %d: %+v, want no base and nothing received", atoll.LevelDeployBase, d)
	}
	h.must(create, AddFiles{Deploy: "next", Files: manifest(3)}, MarkReady{Deploy: "next", Bytes: 3})
	if got := h.files("next"); !slices.Equal(got, manifest(3)) {
		t.Errorf("manifest: %v, want %v", got, manifest(3))
	}
}

// TestBasedDeploySnapshot: a deploy made from a base is a whole manifest
// of its own in a snapshot, with its base recorded, and stays whole when
// the base is pruned after the restore.
func TestBasedDeploySnapshot(t *testing.T) {
	src := newFSM(t)
	seedBase(src)
	src.must(CreateDeploy{ID: "next", Site: "blog", Files: 4, Created: t0, Base: "live", Remove: []string{manifest(5)[4].Path}},
		MarkReady{Deploy: "next", Bytes: 4}, Publish{Deploy: "next", At: t0})
	want := dump(t, src.f)
	if !strings.Contains(want, "Base:live") {
		t.Fatalf("the dump does not show the base:\n%s", want)
	}
	dst := newFSM(t)
	if err := restore(dst.f, snapshotOf(t, src.f)); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, dst.f); got != want {
		t.Fatalf("restored state differs:\nwant %s\ngot  %s", want, got)
	}
	dst.index = src.index
	dst.must(UpdateSite{Name: "blog", Retain: 2})
	dst.readyDeploy("blog", "n3", manifest(1))
	dst.must(Publish{Deploy: "n3", At: t0})
	if _, err := dst.f.Deploy("live"); !errors.Is(err, atoll.ErrNotFound) {
		t.Fatalf("live after a newer publish at retain 2: %v, want pruned", err)
	}
	if got := dst.files("next"); !slices.Equal(got, manifest(4)) {
		t.Errorf("manifest of next after its base was pruned: %v, want %v", got, manifest(4))
	}
	if got, _ := dst.f.File("next", manifest(5)[2].Path); got != manifest(5)[2].Hash {
		t.Errorf("File of a copied entry: %q", got)
	}
}
