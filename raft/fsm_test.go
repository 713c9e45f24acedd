package raft

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"

	hraft "github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// seed builds the state the command tables start from:
//   - site blog (blog.example.com, retain 10) with deploys
//     live1 (published), rdy1 (ready, 2 files), up1 (uploading, 1 of 2 files),
//     bad1 (failed);
//   - site shop (shop.example.com), no deploys;
//   - node n1;
//   - deploy tokens tok1 (blog, named "ci", secret "secret-blog") and tok2
//     (shop, secret "secret-shop").
func seed(h *fsmHarness) {
	h.t.Helper()
	h.must(
		CreateSite{Name: "blog", Domains: []string{"blog.example.com"}, Created: t0},
		CreateSite{Name: "shop", Domains: []string{"shop.example.com"}, Created: t0},
	)
	h.readyDeploy("blog", "live1", manifest(3))
	h.must(Publish{Deploy: "live1", At: t0})
	h.readyDeploy("blog", "rdy1", manifest(2))
	h.must(
		CreateDeploy{ID: "up1", Site: "blog", Files: 2, Created: t0},
		AddFiles{Deploy: "up1", Files: manifest(1)},
		CreateDeploy{ID: "bad1", Site: "blog", Files: 1, Created: t0},
		FailDeploy{Deploy: "bad1", Reason: "upload abandoned"},
		PutNode{Node: atoll.Node{ID: "n1", Role: atoll.RoleCore, RaftAddr: "10.0.0.1:7000", Joined: t0}},
		CreateToken{ID: "tok1", Site: "blog", Name: "ci", Hash: hashOf("secret-blog"), Created: t0},
		CreateToken{ID: "tok2", Site: "shop", Hash: hashOf("secret-shop"), Created: t0},
	)
}

var (
	hashA = hashOf("a")
	hashB = hashOf("b")
)

type commandCase struct {
	name  string
	cmd   Command
	want  error                   // sentinel the response must wrap; nil for success
	check func(*fsmHarness) error // optional: state after the command
}

func runCommandCases(t *testing.T, cases []commandCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newFSM(t)
			seed(h)
			before := dump(t, h.f)
			err := h.apply(tc.cmd)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("apply %+v: %v, want success", tc.cmd, err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("apply %+v: %v, want error wrapping %v", tc.cmd, err, tc.want)
			case tc.want != nil:
				t.Logf("rejected: %v", err)
				if after := dump(t, h.f); after != before {
					t.Errorf("rejected command changed the state:\nbefore %s\nafter  %s", before, after)
				}
			}
			if got, want := h.f.AppliedIndex(), h.index; got != want {
				t.Errorf("AppliedIndex = %d, want %d (rejections count as applied)", got, want)
			}
			if tc.check != nil {
				if err := tc.check(h); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// dump renders every read the FSM offers, to compare whole states.
func dump(t *testing.T, f *FSM) string {
	t.Helper()
	var b strings.Builder
	sites, err := f.Sites()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sites {
		fmt.Fprintf(&b, "site %+v\n", s)
		for _, d := range s.Domains {
			got, err := f.SiteByDomain(d)
			fmt.Fprintf(&b, "  domain %s -> %s %v\n", d, got.Name, err)
		}
		deploys, err := f.Deploys(s.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range deploys {
			fmt.Fprintf(&b, "  deploy %+v\n", d)
			if err := f.Files(d.ID, func(file atoll.File) error {
				fmt.Fprintf(&b, "    %s %s\n", file.Path, file.Hash[:8])
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	nodes, err := f.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "nodes %+v\nadmin %q\nreplicas %d\nlevel %d\n", nodes, f.AdminTokenHash(), f.Replicas(), f.FeatureLevel())
	tokens, err := f.Tokens()
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		byHash, err := f.TokenByHash(tok.Hash)
		fmt.Fprintf(&b, "token %+v\n  by hash -> %s %v\n", tok, byHash.ID, err)
	}
	if err := f.view(func(tx *bolt.Tx) error { // the compact manifests' blobs
		fmt.Fprintf(&b, "next blob id %s\n", tx.Bucket(bucketMeta).Get(keyNextBlobID))
		return tx.Bucket(bucketBlobHashes).ForEach(func(k, v []byte) error {
			fmt.Fprintf(&b, "blob %x %x\n", k, v)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func wantErr(err, want error, what string) error {
	if !errors.Is(err, want) {
		return fmt.Errorf("%s: %v, want %v", what, err, want)
	}
	return nil
}

func TestCreateSite(t *testing.T) {
	runCommandCases(t, []commandCase{
		{name: "new site with domains", cmd: CreateSite{Name: "docs", Domains: []string{"docs.example.com", "www.docs.example.com"}, Created: t0},
			check: func(h *fsmHarness) error {
				s := h.site("docs")
				want := atoll.Site{Name: "docs", Domains: []string{"docs.example.com", "www.docs.example.com"}, Created: t0, Retain: atoll.DefaultRetain}
				if !reflect.DeepEqual(s, want) {
					return fmt.Errorf("site = %+v, want %+v", s, want)
				}
				if got, err := h.f.SiteByDomain("www.docs.example.com"); err != nil || got.Name != "docs" {
					return fmt.Errorf("SiteByDomain = %v, %v", got.Name, err)
				}
				if d, err := h.f.Deploys("docs"); err != nil || len(d) != 0 {
					return fmt.Errorf("Deploys = %v, %v; want none", d, err)
				}
				return nil
			}},
		{name: "explicit retain", cmd: CreateSite{Name: "docs", Retain: 3, Created: t0},
			check: func(h *fsmHarness) error {
				if got := h.site("docs").Retain; got != 3 {
					return fmt.Errorf("Retain = %d, want 3", got)
				}
				return nil
			}},
		{name: "repeated domain kept once", cmd: CreateSite{Name: "docs", Domains: []string{"a.example.com", "a.example.com"}, Created: t0},
			check: func(h *fsmHarness) error {
				if got := h.site("docs").Domains; !slices.Equal(got, []string{"a.example.com"}) {
					return fmt.Errorf("Domains = %v", got)
				}
				return nil
			}},
		{name: "identical retry is a no-op", cmd: CreateSite{Name: "blog", Domains: []string{"blog.example.com"}, Created: t0}},
		{name: "name taken", cmd: CreateSite{Name: "blog", Created: t0.Add(time.Second)}, want: atoll.ErrExists},
		{name: "uppercase name", cmd: CreateSite{Name: "Blog"}, want: atoll.ErrInvalid},
		{name: "double dash name", cmd: CreateSite{Name: "a--b"}, want: atoll.ErrInvalid},
		{name: "leading dash name", cmd: CreateSite{Name: "-ab"}, want: atoll.ErrInvalid},
		{name: "empty name", cmd: CreateSite{}, want: atoll.ErrInvalid},
		{name: "long name", cmd: CreateSite{Name: strings.Repeat("a", 64)}, want: atoll.ErrInvalid},
		{name: "uppercase domain", cmd: CreateSite{Name: "docs", Domains: []string{"Docs.example.com"}}, want: atoll.ErrInvalid},
		{name: "domain with port", cmd: CreateSite{Name: "docs", Domains: []string{"docs.example.com:80"}}, want: atoll.ErrInvalid},
		{name: "single label domain", cmd: CreateSite{Name: "docs", Domains: []string{"localhost"}}, want: atoll.ErrInvalid},
		{name: "domain of another site", cmd: CreateSite{Name: "docs", Domains: []string{"ok.example.com", "shop.example.com"}}, want: atoll.ErrConflict,
			check: func(h *fsmHarness) error {
				return wantErr(func() error { _, err := h.f.SiteByDomain("ok.example.com"); return err }(), atoll.ErrNotFound, "first domain")
			}},
		{name: "negative retain", cmd: CreateSite{Name: "docs", Retain: -1}, want: atoll.ErrInvalid},
		{name: "huge retain", cmd: CreateSite{Name: "docs", Retain: atoll.MaxRetain + 1}, want: atoll.ErrInvalid},
	})
}

func TestUpdateSite(t *testing.T) {
	runCommandCases(t, []commandCase{
		{name: "replace domains", cmd: UpdateSite{Name: "blog", Domains: []string{"www.blog.example.com"}},
			check: func(h *fsmHarness) error {
				if _, err := h.f.SiteByDomain("blog.example.com"); !errors.Is(err, atoll.ErrNotFound) {
					return fmt.Errorf("old domain still resolves: %v", err)
				}
				if s, err := h.f.SiteByDomain("www.blog.example.com"); err != nil || s.Name != "blog" {
					return fmt.Errorf("new domain: %v %v", s.Name, err)
				}
				if got := h.site("blog").Retain; got != atoll.DefaultRetain {
					return fmt.Errorf("retain changed to %d", got)
				}
				return nil
			}},
		{name: "keep own domain and add one", cmd: UpdateSite{Name: "blog", Domains: []string{"blog.example.com", "b.example.com"}, Retain: 4},
			check: func(h *fsmHarness) error {
				s := h.site("blog")
				if !slices.Equal(s.Domains, []string{"blog.example.com", "b.example.com"}) || s.Retain != 4 || s.Published != "live1" {
					return fmt.Errorf("site = %+v", s)
				}
				_, err := h.f.SiteByDomain("blog.example.com")
				return err
			}},
		{name: "clear domains", cmd: UpdateSite{Name: "blog"},
			check: func(h *fsmHarness) error {
				_, err := h.f.SiteByDomain("blog.example.com")
				return wantErr(err, atoll.ErrNotFound, "cleared domain")
			}},
		{name: "unknown site", cmd: UpdateSite{Name: "nope"}, want: atoll.ErrNotFound},
		{name: "domain of another site", cmd: UpdateSite{Name: "blog", Domains: []string{"shop.example.com"}}, want: atoll.ErrConflict},
		{name: "invalid domain", cmd: UpdateSite{Name: "blog", Domains: []string{"bad domain"}}, want: atoll.ErrInvalid},
		{name: "invalid retain", cmd: UpdateSite{Name: "blog", Retain: -2}, want: atoll.ErrInvalid},
		{name: "negative limit", cmd: UpdateSite{Name: "blog", MaxFiles: new(-1)}, want: atoll.ErrInvalid},
	})
}

// TestUpdateSiteLimits: a limit given replaces the site's (0: back to the
// cluster default), one left out (nil, as in every UpdateSite written
// before limits existed) keeps it.
func TestUpdateSiteLimits(t *testing.T) {
	h := newFSM(t)
	h.must(CreateSite{Name: "blog", Created: t0})
	if s := h.site("blog"); s.MaxBytes != 0 || s.MaxUploading != 0 || s.MaxFiles != 0 {
		t.Fatalf("new site has limits %+v, want none (the cluster defaults)", s)
	}
	h.must(UpdateSite{Name: "blog", MaxBytes: new(int64(1 << 20)), MaxUploading: new(2), MaxFiles: new(50)})
	h.must(UpdateSite{Name: "blog", Retain: 3}) // no limits: kept
	if s := h.site("blog"); s.MaxBytes != 1<<20 || s.MaxUploading != 2 || s.MaxFiles != 50 || s.Retain != 3 {
		t.Fatalf("after an update without limits: %+v, want 1MiB/2/50 kept", s)
	}
	h.must(UpdateSite{Name: "blog", MaxUploading: new(0)})
	if s := h.site("blog"); s.MaxBytes != 1<<20 || s.MaxUploading != 0 || s.MaxFiles != 50 {
		t.Fatalf("after max_uploading 0: %+v, want it back to the default, the others kept", s)
	}
}

// TestUpdateSiteHTTPS: HTTPSOnly and HSTS given replace the site's; an
// update without them (nil, as in every UpdateSite written before they
// existed) keeps them.
func TestUpdateSiteHTTPS(t *testing.T) {
	h := newFSM(t)
	h.must(CreateSite{Name: "blog", Created: t0})
	if s := h.site("blog"); s.HTTPSOnly || s.HSTS {
		t.Fatalf("new site has https_only %v, hsts %v; want both off", s.HTTPSOnly, s.HSTS)
	}
	// Below the level that brings them, they count for nothing, as on an
	// older node that drops them.
	h.must(UpdateSite{Name: "blog", HTTPSOnly: new(true), HSTS: new(true)})
	if s := h.site("blog"); s.HTTPSOnly || s.HSTS {
		t.Fatalf("below level %d: https_only %v, hsts %v; want both ignored", atoll.LevelFeatureLevels, s.HTTPSOnly, s.HSTS)
	}
	h.must(SetFeatureLevel{Level: atoll.LevelFeatureLevels})
	h.must(UpdateSite{Name: "blog", HTTPSOnly: new(true), HSTS: new(true)})
	h.must(UpdateSite{Name: "blog", Retain: 3, MaxFiles: new(5)}) // no HTTPS settings: kept
	if s := h.site("blog"); !s.HTTPSOnly || !s.HSTS || s.Retain != 3 {
		t.Fatalf("after an update without HTTPS settings: %+v, want https_only and hsts kept", s)
	}
	h.must(UpdateSite{Name: "blog", HSTS: new(false)})
	if s := h.site("blog"); !s.HTTPSOnly || s.HSTS {
		t.Fatalf("after hsts false: https_only %v, hsts %v; want true, false", s.HTTPSOnly, s.HSTS)
	}
}

func TestDeleteSite(t *testing.T) {
	runCommandCases(t, []commandCase{
		{name: "removes domains, deploys, manifests", cmd: DeleteSite{Name: "blog"},
			check: func(h *fsmHarness) error {
				var errs []error
				_, err := h.f.Site("blog")
				errs = append(errs, wantErr(err, atoll.ErrNotFound, "Site"))
				_, err = h.f.SiteByDomain("blog.example.com")
				errs = append(errs, wantErr(err, atoll.ErrNotFound, "SiteByDomain"))
				_, err = h.f.Deploys("blog")
				errs = append(errs, wantErr(err, atoll.ErrNotFound, "Deploys"))
				for _, id := range []string{"live1", "rdy1", "up1", "bad1"} {
					_, err = h.f.Deploy(id)
					errs = append(errs, wantErr(err, atoll.ErrNotFound, "Deploy "+id))
					_, err = h.f.File(id, "/f/00000.html")
					errs = append(errs, wantErr(err, atoll.ErrNotFound, "File in "+id))
				}
				if s, err := h.f.SiteByDomain("shop.example.com"); err != nil || s.Name != "shop" {
					errs = append(errs, fmt.Errorf("other site's domain: %v %v", s.Name, err))
				}
				// Its tokens are revoked with it; the other site's stay.
				_, err = h.f.TokenByHash(hashOf("secret-blog"))
				errs = append(errs, wantErr(err, atoll.ErrNotFound, "TokenByHash of the site's token"))
				if toks, err := h.f.Tokens(); err != nil || len(toks) != 1 || toks[0].ID != "tok2" {
					errs = append(errs, fmt.Errorf("Tokens = %+v, %v; want only tok2", toks, err))
				}
				// The name and the deploy ids are free again, and a site of
				// the same name does not get the old tokens back.
				h.must(CreateSite{Name: "blog", Created: t0}, CreateDeploy{ID: "live1", Site: "blog", Files: 9})
				_, err = h.f.TokenByHash(hashOf("secret-blog"))
				errs = append(errs, wantErr(err, atoll.ErrNotFound, "TokenByHash after the site is recreated"))
				return errors.Join(errs...)
			}},
		{name: "unknown site", cmd: DeleteSite{Name: "nope"}, want: atoll.ErrNotFound},
	})
}

func TestCreateDeploy(t *testing.T) {
	runCommandCases(t, []commandCase{
		{name: "new deploy", cmd: CreateDeploy{ID: "new1", Site: "shop", Files: 5, Created: t0},
			check: func(h *fsmHarness) error {
				want := atoll.Deploy{ID: "new1", Site: "shop", State: atoll.StateUploading, Created: t0, Files: 5}
				if got := h.deploy("new1"); !reflect.DeepEqual(got, want) {
					return fmt.Errorf("deploy = %+v, want %+v", got, want)
				}
				n := 0
				if err := h.f.Files("new1", func(atoll.File) error { n++; return nil }); err != nil || n != 0 {
					return fmt.Errorf("Files = %d, %v; want empty manifest", n, err)
				}
				return nil
			}},
		{name: "empty deploy", cmd: CreateDeploy{ID: "new1", Site: "shop", Created: t0}},
		{name: "retry is a no-op", cmd: CreateDeploy{ID: "up1", Site: "blog", Files: 2, Created: t0.Add(time.Hour)},
			check: func(h *fsmHarness) error {
				if d := h.deploy("up1"); d.Received != 1 || !d.Created.Equal(t0) {
					return fmt.Errorf("retry changed the deploy: %+v", d)
				}
				return nil
			}},
		{name: "id taken with other files", cmd: CreateDeploy{ID: "up1", Site: "blog", Files: 3}, want: atoll.ErrExists},
		{name: "id taken by other site", cmd: CreateDeploy{ID: "up1", Site: "shop", Files: 2}, want: atoll.ErrExists},
		{name: "unknown site", cmd: CreateDeploy{ID: "new1", Site: "nope", Files: 1}, want: atoll.ErrNotFound},
		{name: "uppercase id", cmd: CreateDeploy{ID: "New1", Site: "shop"}, want: atoll.ErrInvalid},
		{name: "dash in id", cmd: CreateDeploy{ID: "new-1", Site: "shop"}, want: atoll.ErrInvalid},
		{name: "empty id", cmd: CreateDeploy{Site: "shop"}, want: atoll.ErrInvalid},
		{name: "long id", cmd: CreateDeploy{ID: strings.Repeat("a", 33), Site: "shop"}, want: atoll.ErrInvalid},
		{name: "negative files", cmd: CreateDeploy{ID: "new1", Site: "shop", Files: -1}, want: atoll.ErrInvalid},
	})
}

func TestAddFiles(t *testing.T) {
	received := func(id string, want int) func(*fsmHarness) error {
		return func(h *fsmHarness) error {
			if got := h.deploy(id).Received; got != want {
				return fmt.Errorf("Received = %d, want %d", got, want)
			}
			return nil
		}
	}
	existing := manifest(1)[0]
	runCommandCases(t, []commandCase{
		{name: "completes the manifest", cmd: AddFiles{Deploy: "up1", Files: []atoll.File{{Path: "/b.css", Hash: hashB}}},
			check: func(h *fsmHarness) error {
				if err := received("up1", 2)(h); err != nil {
					return err
				}
				got, err := h.f.File("up1", "/b.css")
				if err != nil || got != hashB {
					return fmt.Errorf("File = %q, %v; want %q", got, err, hashB)
				}
				return nil
			}},
		{name: "same path same hash is a no-op", cmd: AddFiles{Deploy: "up1", Files: []atoll.File{existing}}, check: received("up1", 1)},
		{name: "same path twice in a batch counts once", cmd: AddFiles{Deploy: "up1", Files: []atoll.File{{Path: "/b", Hash: hashB}, {Path: "/b", Hash: hashB}}}, check: received("up1", 2)},
		{name: "empty batch", cmd: AddFiles{Deploy: "up1"}, check: received("up1", 1)},
		{name: "same path other hash", cmd: AddFiles{Deploy: "up1", Files: []atoll.File{{Path: existing.Path, Hash: hashA}}}, want: atoll.ErrConflict},
		{name: "same path other hash in a batch", cmd: AddFiles{Deploy: "up1", Files: []atoll.File{{Path: "/b", Hash: hashA}, {Path: "/b", Hash: hashB}}}, want: atoll.ErrConflict},
		{name: "beyond declared files", cmd: AddFiles{Deploy: "up1", Files: []atoll.File{{Path: "/b", Hash: hashB}, {Path: "/c", Hash: hashA}}}, want: atoll.ErrInvalid,
			check: func(h *fsmHarness) error {
				_, err := h.f.File("up1", "/b")
				return wantErr(err, atoll.ErrNotFound, "file of a rejected batch")
			}},
		{name: "path without leading slash", cmd: AddFiles{Deploy: "up1", Files: []atoll.File{{Path: "b.css", Hash: hashB}}}, want: atoll.ErrInvalid},
		{name: "dot segment", cmd: AddFiles{Deploy: "up1", Files: []atoll.File{{Path: "/a/../b", Hash: hashB}}}, want: atoll.ErrInvalid},
		{name: "trailing slash", cmd: AddFiles{Deploy: "up1", Files: []atoll.File{{Path: "/a/", Hash: hashB}}}, want: atoll.ErrInvalid},
		{name: "uppercase hash", cmd: AddFiles{Deploy: "up1", Files: []atoll.File{{Path: "/b", Hash: strings.ToUpper(hashB)}}}, want: atoll.ErrInvalid},
		{name: "short hash", cmd: AddFiles{Deploy: "up1", Files: []atoll.File{{Path: "/b", Hash: hashB[:10]}}}, want: atoll.ErrInvalid},
		{name: "invalid file after a valid one", cmd: AddFiles{Deploy: "up1", Files: []atoll.File{{Path: "/ok", Hash: hashA}, {Path: "/a//b", Hash: hashB}}}, want: atoll.ErrInvalid},
		{name: "ready deploy", cmd: AddFiles{Deploy: "rdy1", Files: []atoll.File{{Path: "/b", Hash: hashB}}}, want: atoll.ErrConflict},
		{name: "resend of a batch a ready deploy holds", cmd: AddFiles{Deploy: "rdy1", Files: manifest(2)}, check: received("rdy1", 2)},
		{name: "resend of a batch a published deploy holds", cmd: AddFiles{Deploy: "live1", Files: manifest(3)[1:]}, check: received("live1", 3)},
		{name: "ready deploy, a held entry and a new one", cmd: AddFiles{Deploy: "rdy1", Files: []atoll.File{manifest(2)[0], {Path: "/b", Hash: hashB}}}, want: atoll.ErrConflict},
		{name: "ready deploy, a held path with another hash", cmd: AddFiles{Deploy: "rdy1", Files: []atoll.File{{Path: manifest(2)[0].Path, Hash: hashB}}}, want: atoll.ErrConflict},
		{name: "failed deploy", cmd: AddFiles{Deploy: "bad1", Files: []atoll.File{{Path: "/b", Hash: hashB}}}, want: atoll.ErrConflict},
		{name: "unknown deploy", cmd: AddFiles{Deploy: "nope", Files: []atoll.File{{Path: "/b", Hash: hashB}}}, want: atoll.ErrNotFound},
	})
}

func TestMarkReady(t *testing.T) {
	runCommandCases(t, []commandCase{
		{name: "complete deploy", cmd: AddFiles{Deploy: "up1", Files: []atoll.File{{Path: "/b", Hash: hashB}}},
			check: func(h *fsmHarness) error {
				if err := h.apply(MarkReady{Deploy: "up1", Bytes: 99}); err != nil {
					return err
				}
				if d := h.deploy("up1"); d.State != atoll.StateReady || d.Bytes != 99 {
					return fmt.Errorf("deploy = %+v, want ready with 99 bytes", d)
				}
				return nil
			}},
		{name: "repeat is a no-op", cmd: MarkReady{Deploy: "rdy1", Bytes: 2}},
		{name: "repeat with other bytes", cmd: MarkReady{Deploy: "rdy1", Bytes: 3}, want: atoll.ErrConflict},
		{name: "incomplete manifest", cmd: MarkReady{Deploy: "up1", Bytes: 1}, want: atoll.ErrConflict},
		{name: "published deploy", cmd: MarkReady{Deploy: "live1", Bytes: 1}, want: atoll.ErrConflict},
		{name: "published deploy, a resend of its MarkReady", cmd: MarkReady{Deploy: "live1", Bytes: 3},
			check: func(h *fsmHarness) error {
				if d := h.deploy("live1"); d.State != atoll.StatePublished || d.Bytes != 3 {
					return fmt.Errorf("deploy = %+v, want published as it was", d)
				}
				return nil
			}},
		{name: "failed deploy", cmd: MarkReady{Deploy: "bad1"}, want: atoll.ErrConflict},
		{name: "negative bytes", cmd: MarkReady{Deploy: "up1", Bytes: -1}, want: atoll.ErrInvalid},
		{name: "unknown deploy", cmd: MarkReady{Deploy: "nope"}, want: atoll.ErrNotFound},
	})
}

func TestPublish(t *testing.T) {
	t1 := t0.Add(time.Hour)
	runCommandCases(t, []commandCase{
		{name: "ready deploy goes live", cmd: Publish{Deploy: "rdy1", At: t1},
			check: func(h *fsmHarness) error {
				if got := h.site("blog").Published; got != "rdy1" {
					return fmt.Errorf("Published = %q, want rdy1", got)
				}
				if d := h.deploy("rdy1"); d.State != atoll.StatePublished || !d.PublishedAt.Equal(t1) {
					return fmt.Errorf("rdy1 = %+v", d)
				}
				if d := h.deploy("live1"); d.State != atoll.StateSuperseded || !d.PublishedAt.Equal(t0) {
					return fmt.Errorf("live1 = %+v, want superseded", d)
				}
				// Rollback: publish the superseded one again.
				if err := h.apply(Publish{Deploy: "live1", At: t1.Add(time.Hour)}); err != nil {
					return err
				}
				if d := h.deploy("rdy1"); d.State != atoll.StateSuperseded {
					return fmt.Errorf("after rollback rdy1 is %s", d.State)
				}
				if got := h.site("blog").Published; got != "live1" {
					return fmt.Errorf("after rollback Published = %q", got)
				}
				return nil
			}},
		{name: "live deploy again is a no-op", cmd: Publish{Deploy: "live1", At: t1},
			check: func(h *fsmHarness) error {
				if d := h.deploy("live1"); !d.PublishedAt.Equal(t0) {
					return fmt.Errorf("PublishedAt moved to %v", d.PublishedAt)
				}
				return nil
			}},
		{name: "uploading deploy", cmd: Publish{Deploy: "up1", At: t1}, want: atoll.ErrConflict},
		{name: "failed deploy", cmd: Publish{Deploy: "bad1", At: t1}, want: atoll.ErrConflict},
		{name: "unknown deploy", cmd: Publish{Deploy: "nope", At: t1}, want: atoll.ErrNotFound},
	})
}

func TestFailDeploy(t *testing.T) {
	runCommandCases(t, []commandCase{
		{name: "uploading deploy fails", cmd: FailDeploy{Deploy: "up1", Reason: strings.Repeat("é", maxReasonLen)},
			check: func(h *fsmHarness) error {
				d := h.deploy("up1")
				if d.State != atoll.StateFailed || len(d.Reason) > maxReasonLen || !strings.HasPrefix(d.Reason, "éé") {
					return fmt.Errorf("deploy = %s, reason of %d bytes", d.State, len(d.Reason))
				}
				return nil
			}},
		{name: "failed again is a no-op", cmd: FailDeploy{Deploy: "bad1", Reason: "other"},
			check: func(h *fsmHarness) error {
				if got := h.deploy("bad1").Reason; got != "upload abandoned" {
					return fmt.Errorf("reason = %q", got)
				}
				return nil
			}},
		{name: "ready deploy", cmd: FailDeploy{Deploy: "rdy1"}, want: atoll.ErrConflict},
		{name: "published deploy", cmd: FailDeploy{Deploy: "live1"}, want: atoll.ErrConflict},
		{name: "unknown deploy", cmd: FailDeploy{Deploy: "nope"}, want: atoll.ErrNotFound},
	})
}

func TestNodesAndAdminToken(t *testing.T) {
	runCommandCases(t, []commandCase{
		{name: "add edge node", cmd: PutNode{Node: atoll.Node{ID: "edge-2.example", Role: atoll.RoleEdge, HTTPAddr: ":8080"}},
			check: func(h *fsmHarness) error {
				nodes, err := h.f.Nodes()
				if err != nil {
					return err
				}
				if len(nodes) != 2 || nodes[0].ID != "edge-2.example" || nodes[0].State != atoll.NodeActive || nodes[1].ID != "n1" {
					return fmt.Errorf("nodes = %+v", nodes)
				}
				return nil
			}},
		{name: "update node", cmd: PutNode{Node: atoll.Node{ID: "n1", Role: atoll.RoleCore, State: atoll.NodeDraining}},
			check: func(h *fsmHarness) error {
				nodes, _ := h.f.Nodes()
				if len(nodes) != 1 || nodes[0].State != atoll.NodeDraining {
					return fmt.Errorf("nodes = %+v", nodes)
				}
				return nil
			}},
		{name: "bad role", cmd: PutNode{Node: atoll.Node{ID: "n2", Role: "leader"}}, want: atoll.ErrInvalid},
		{name: "bad state", cmd: PutNode{Node: atoll.Node{ID: "n2", Role: atoll.RoleCore, State: "gone"}}, want: atoll.ErrInvalid},
		{name: "empty id", cmd: PutNode{Node: atoll.Node{Role: atoll.RoleCore}}, want: atoll.ErrInvalid},
		{name: "id with slash", cmd: PutNode{Node: atoll.Node{ID: "a/b", Role: atoll.RoleCore}}, want: atoll.ErrInvalid},
		{name: "remove node", cmd: RemoveNode{ID: "n1"},
			check: func(h *fsmHarness) error {
				if nodes, _ := h.f.Nodes(); len(nodes) != 0 {
					return fmt.Errorf("nodes = %+v", nodes)
				}
				return nil
			}},
		{name: "remove unknown node", cmd: RemoveNode{ID: "n9"}, want: atoll.ErrNotFound},
		{name: "set admin token", cmd: SetAdminToken{Hash: hashA},
			check: func(h *fsmHarness) error {
				if got := h.f.AdminTokenHash(); got != hashA {
					return fmt.Errorf("AdminTokenHash = %q", got)
				}
				return nil
			}},
		{name: "admin token not a hash", cmd: SetAdminToken{Hash: "secret"}, want: atoll.ErrInvalid},
		{name: "set replicas", cmd: SetReplicas{N: 3},
			check: func(h *fsmHarness) error {
				if got := h.f.Replicas(); got != 3 {
					return fmt.Errorf("Replicas = %d, want 3", got)
				}
				return nil
			}},
		{name: "zero replicas", cmd: SetReplicas{N: 0}, want: atoll.ErrInvalid},
		{name: "too many replicas", cmd: SetReplicas{N: 10}, want: atoll.ErrInvalid},
	})
}

func TestTokens(t *testing.T) {
	tok1 := atoll.Token{ID: "tok1", Site: "blog", Name: "ci", Hash: hashOf("secret-blog"), Created: t0}
	create := func(id, site, name, secret string) CreateToken {
		return CreateToken{ID: id, Site: site, Name: name, Hash: hashOf(secret), Created: t0}
	}
	runCommandCases(t, []commandCase{
		{name: "new token", cmd: create("tok3", "shop", "deploy bot ✓", "secret-3"),
			check: func(h *fsmHarness) error {
				want := atoll.Token{ID: "tok3", Site: "shop", Name: "deploy bot ✓", Hash: hashOf("secret-3"), Created: t0}
				got, err := h.f.TokenByHash(hashOf("secret-3"))
				if err != nil || !reflect.DeepEqual(got, want) {
					return fmt.Errorf("TokenByHash = %+v, %v; want %+v", got, err, want)
				}
				toks, err := h.f.Tokens()
				if err != nil {
					return err
				}
				var ids []string
				for _, t := range toks {
					ids = append(ids, t.ID)
				}
				if !slices.Equal(ids, []string{"tok1", "tok2", "tok3"}) {
					return fmt.Errorf("Tokens ids = %v, want tok1 tok2 tok3 (by id)", ids)
				}
				return nil
			}},
		{name: "second token for the same site", cmd: create("a9", "blog", "", "secret-9")},
		{name: "identical retry is a no-op", cmd: CreateToken{ID: tok1.ID, Site: tok1.Site, Name: tok1.Name, Hash: tok1.Hash, Created: t0},
			check: func(h *fsmHarness) error {
				got, err := h.f.TokenByHash(tok1.Hash)
				if err != nil || !reflect.DeepEqual(got, tok1) {
					return fmt.Errorf("TokenByHash = %+v, %v; want %+v", got, err, tok1)
				}
				return nil
			}},
		{name: "id taken, other secret", cmd: create("tok1", "blog", "ci", "other"), want: atoll.ErrExists},
		{name: "id taken, other name", cmd: create("tok1", "blog", "cd", "secret-blog"), want: atoll.ErrExists},
		{name: "id taken, other site", cmd: create("tok1", "shop", "ci", "secret-blog"), want: atoll.ErrExists},
		{name: "id taken, other time", cmd: CreateToken{ID: tok1.ID, Site: tok1.Site, Name: tok1.Name, Hash: tok1.Hash, Created: t0.Add(time.Second)}, want: atoll.ErrExists},
		{name: "secret of another token", cmd: create("tok3", "shop", "", "secret-blog"), want: atoll.ErrConflict},
		{name: "unknown site", cmd: create("tok3", "nope", "", "secret-3"), want: atoll.ErrNotFound},
		{name: "no site", cmd: create("tok3", "", "", "secret-3"), want: atoll.ErrNotFound},
		{name: "uppercase id", cmd: create("Tok3", "shop", "", "secret-3"), want: atoll.ErrInvalid},
		{name: "empty id", cmd: create("", "shop", "", "secret-3"), want: atoll.ErrInvalid},
		{name: "long id", cmd: create(strings.Repeat("a", 33), "shop", "", "secret-3"), want: atoll.ErrInvalid},
		{name: "hash not hex", cmd: CreateToken{ID: "tok3", Site: "shop", Hash: "atl_site_plaintext", Created: t0}, want: atoll.ErrInvalid},
		{name: "hash uppercase", cmd: CreateToken{ID: "tok3", Site: "shop", Hash: strings.ToUpper(hashOf("x")), Created: t0}, want: atoll.ErrInvalid},
		{name: "long name", cmd: create("tok3", "shop", strings.Repeat("n", atoll.MaxTokenNameLen+1), "secret-3"), want: atoll.ErrInvalid},
		{name: "name with newline", cmd: create("tok3", "shop", "a\nb", "secret-3"), want: atoll.ErrInvalid},
		{name: "revoke", cmd: RevokeToken{ID: "tok1"},
			check: func(h *fsmHarness) error {
				if _, err := h.f.TokenByHash(tok1.Hash); !errors.Is(err, atoll.ErrNotFound) {
					return fmt.Errorf("TokenByHash of a revoked token: %v, want ErrNotFound", err)
				}
				if toks, _ := h.f.Tokens(); len(toks) != 1 || toks[0].ID != "tok2" {
					return fmt.Errorf("Tokens = %+v, want only tok2", toks)
				}
				// Id and hash are free again: the index holds no leftover.
				return h.apply(create("tok1", "shop", "", "secret-blog"))
			}},
		{name: "revoke unknown", cmd: RevokeToken{ID: "tok9"}, want: atoll.ErrNotFound},
	})
}

func TestTokenByHashUnknown(t *testing.T) {
	h := newFSM(t)
	seed(h)
	for _, hash := range []string{hashOf("nope"), "", "tok1", strings.ToUpper(hashOf("secret-blog"))} {
		if tok, err := h.f.TokenByHash(hash); !errors.Is(err, atoll.ErrNotFound) {
			t.Errorf("TokenByHash(%q) = %+v, %v; want ErrNotFound", hash, tok, err)
		}
	}
}

func TestChangedWakesWaiters(t *testing.T) {
	h := newFSM(t)
	ch := h.f.Changed()
	select {
	case <-ch:
		t.Fatal("Changed fired before any change")
	default:
	}
	h.must(SetReplicas{N: 2})
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed did not fire after an applied command")
	}
	if next := h.f.Changed(); next == ch {
		t.Error("Changed returned the already-closed channel again")
	}
}

func TestUnknownEntryStopsApplying(t *testing.T) {
	h := newFSM(t)
	seed(h)
	// A batch: a known command, one from a newer binary, then another known
	// one. The first is applied; the unknown one and everything after it
	// wait for an upgrade: never skipped, never half applied.
	batch := h.logs(CreateSite{Name: "before", Created: time.Unix(1, 0).UTC()})
	h.index++
	batch = append(batch, &hraft.Log{Index: h.index, Term: 1, Type: hraft.LogCommand, Data: []byte("\x01\xc8{}")})
	batch = append(batch, h.logs(CreateSite{Name: "after", Created: time.Unix(1, 0).UTC()})...)
	resp := h.f.ApplyBatch(batch)
	if resp[0] != nil {
		t.Errorf("response to the known command = %v, want nil", resp[0])
	}
	for i := 1; i < 3; i++ {
		if err, _ := resp[i].(error); !errors.Is(err, ErrNeedsUpgrade) {
			t.Errorf("response %d = %v, want ErrNeedsUpgrade", i, resp[i])
		}
	}
	if got, want := h.f.AppliedIndex(), batch[0].Index; got != want {
		t.Errorf("AppliedIndex = %d, want %d (the entry before the unknown one)", got, want)
	}
	if _, err := h.f.Site("before"); err != nil {
		t.Errorf("the entry before the unknown one: %v", err)
	}
	if _, err := h.f.Site("after"); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("the entry after the unknown one was applied: %v", err)
	}
	if err := h.f.StorageFailed(); !errors.Is(err, ErrNeedsUpgrade) || !strings.Contains(err.Error(), "newer atoll") {
		t.Errorf("StorageFailed = %v, want ErrNeedsUpgrade saying to run a newer atoll", err)
	}
	before := dump(t, h.f)
	if err := h.apply(CreateSite{Name: "later", Created: time.Unix(1, 0).UTC()}); !errors.Is(err, ErrNeedsUpgrade) {
		t.Errorf("a later batch: %v, want ErrNeedsUpgrade", err)
	}
	if after := dump(t, h.f); after != before {
		t.Error("a stopped FSM changed its state")
	}
}

func TestSetFeatureLevel(t *testing.T) {
	h := newFSM(t)
	if got := h.f.FeatureLevel(); got != atoll.LevelBase {
		t.Fatalf("FeatureLevel of a new state = %d, want %d", got, atoll.LevelBase)
	}
	h.must(SetFeatureLevel{Level: atoll.LevelFeatureLevels})
	h.must(SetFeatureLevel{Level: atoll.LevelFeatureLevels}) // a resend is a no-op
	if got := h.f.FeatureLevel(); got != atoll.LevelFeatureLevels {
		t.Errorf("FeatureLevel = %d, want %d", got, atoll.LevelFeatureLevels)
	}
	if err := h.apply(SetFeatureLevel{Level: atoll.LevelBase}); !errors.Is(err, atoll.ErrConflict) {
		t.Errorf("lowering the level: %v, want ErrConflict", err)
	}
	if err := h.apply(SetFeatureLevel{Level: atoll.MaxFeatureLevel + 1}); !errors.Is(err, atoll.ErrInvalid) {
		t.Errorf("a level this binary does not know: %v, want ErrInvalid", err)
	}
	if got := h.f.FeatureLevel(); got != atoll.LevelFeatureLevels {
		t.Errorf("FeatureLevel after refused commands = %d, want %d", got, atoll.LevelFeatureLevels)
	}
}

func TestPruneKeepsRetainedAndLive(t *testing.T) {
	h := newFSM(t)
	h.must(CreateSite{Name: "blog", Retain: 2, Created: t0})
	files := manifest(2)
	for i := 1; i <= 4; i++ {
		id := fmt.Sprintf("d%d", i)
		h.readyDeploy("blog", id, files)
		h.must(Publish{Deploy: id, At: t0})
	}
	ids := func() []string {
		ds, err := h.f.Deploys("blog")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, d := range ds {
			out = append(out, d.ID+":"+string(d.State))
		}
		return out
	}
	if got, want := ids(), []string{"d4:published", "d3:superseded"}; !slices.Equal(got, want) {
		t.Fatalf("deploys = %v, want %v", got, want)
	}
	for _, id := range []string{"d1", "d2"} {
		if _, err := h.f.File(id, files[0].Path); !errors.Is(err, atoll.ErrNotFound) {
			t.Errorf("manifest of pruned %s: %v, want ErrNotFound", id, err)
		}
	}

	// Publish d5 while two newer ready deploys exist: d5 is live although
	// not among the 2 newest, and an upload in progress is left alone.
	h.readyDeploy("blog", "d5", files)
	h.must(CreateDeploy{ID: "up", Site: "blog", Files: 1, Created: t0})
	h.readyDeploy("blog", "d6", files)
	h.readyDeploy("blog", "d7", files)
	h.must(Publish{Deploy: "d5", At: t0})
	if got, want := ids(), []string{"d7:ready", "d6:ready", "up:uploading", "d5:published"}; !slices.Equal(got, want) {
		t.Fatalf("deploys = %v, want %v", got, want)
	}
	if _, err := h.f.File("d5", files[0].Path); err != nil {
		t.Errorf("live deploy's manifest: %v", err)
	}
	if _, err := h.f.Deploy("d4"); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("d4: %v, want pruned", err)
	}
}

func TestDeploysPerSite(t *testing.T) {
	// "a" is a prefix of "ab": the order index must still keep them apart.
	h := newFSM(t)
	h.must(CreateSite{Name: "a", Created: t0}, CreateSite{Name: "ab", Created: t0})
	h.must(
		CreateDeploy{ID: "x1", Site: "a", Created: t0},
		CreateDeploy{ID: "y1", Site: "ab", Created: t0},
		CreateDeploy{ID: "x2", Site: "a", Created: t0},
		CreateDeploy{ID: "y2", Site: "ab", Created: t0},
	)
	for site, want := range map[string][]string{"a": {"x2", "x1"}, "ab": {"y2", "y1"}} {
		ds, err := h.f.Deploys(site)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range ds {
			got = append(got, d.ID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Deploys(%q) = %v, want %v", site, got, want)
		}
	}
	if _, err := h.f.Deploys("b"); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("Deploys of unknown site: %v", err)
	}
}

func TestFilesListing(t *testing.T) {
	h := newFSM(t)
	h.must(CreateSite{Name: "blog", Created: t0})
	files := manifest(2*filesChunk + 7)
	slices.Reverse(files) // arrival order does not matter
	h.readyDeploy("blog", "d1", files)

	var got []atoll.File
	if err := h.f.Files("d1", func(f atoll.File) error { got = append(got, f); return nil }); err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(files)
	slices.SortFunc(want, func(a, b atoll.File) int { return strings.Compare(a.Path, b.Path) })
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Files returned %d entries, want %d in path order", len(got), len(want))
	}

	stop := errors.New("stop")
	n := 0
	if err := h.f.Files("d1", func(atoll.File) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("Files with failing fn = %v after %d calls, want stop after 1", err, n)
	}

	// Deleted in the middle of a listing (between chunks).
	n = 0
	err := h.f.Files("d1", func(atoll.File) error {
		if n++; n == filesChunk {
			h.must(DeleteSite{Name: "blog"})
		}
		return nil
	})
	if !errors.Is(err, atoll.ErrNotFound) || n != filesChunk {
		t.Errorf("Files of a deploy deleted while listing = %v after %d, want ErrNotFound after %d", err, n, filesChunk)
	}
	if err := h.f.Files("nope", func(atoll.File) error { return nil }); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("Files of unknown deploy: %v", err)
	}
}

// TestReplayIsIdempotent applies a history, then hands the FSM the same log
// entries again, as raft does after a restart: nothing may be applied twice.
// Observable: a replayed CreateSite would answer ErrExists, a replayed
// Publish of the first deploy would make it live again.
func TestReplayIsIdempotent(t *testing.T) {
	for _, level := range []int{atoll.LevelBase, atoll.LevelCompactManifests} {
		t.Run(fmt.Sprint("level", level), func(t *testing.T) { replayIsIdempotent(t, level) })
	}
}

func replayIsIdempotent(t *testing.T, level int) {
	h := newFSM(t)
	setLevel(t, h.f, level)
	files := manifest(3)
	var cmds []Command
	cmds = append(cmds, CreateSite{Name: "blog", Created: t0})
	for _, id := range []string{"d1", "d2"} {
		cmds = append(cmds, CreateDeploy{ID: id, Site: "blog", Files: 3, Created: t0})
		for _, b := range BatchFiles(id, files) {
			cmds = append(cmds, b)
		}
		cmds = append(cmds, MarkReady{Deploy: id, Bytes: 3}, Publish{Deploy: id, At: t0.Add(time.Duration(len(cmds)) * time.Minute)})
	}
	logs := h.logs(cmds...)
	for i, r := range h.f.ApplyBatch(logs) {
		if r != nil {
			t.Fatalf("first apply of %T: %v", cmds[i], r)
		}
	}
	want := dump(t, h.f)

	replays := []struct {
		name string
		logs []*hraft.Log
	}{
		{"whole history", logs},
		{"prefix up to the first publish", logs[:5]},
		{"one entry at a time", nil},
	}
	for _, r := range replays {
		batches := [][]*hraft.Log{r.logs}
		if r.logs == nil {
			batches = nil
			for _, l := range logs {
				batches = append(batches, []*hraft.Log{l})
			}
		}
		for _, b := range batches {
			for i, resp := range h.f.ApplyBatch(b) {
				if resp != nil {
					t.Errorf("%s: replayed entry %d answered %v, want it skipped", r.name, b[i].Index, resp)
				}
			}
		}
		if got := dump(t, h.f); got != want {
			t.Fatalf("%s changed the state:\nwant %s\ngot  %s", r.name, want, got)
		}
		if got := h.f.AppliedIndex(); got != uint64(len(logs)) {
			t.Errorf("%s: AppliedIndex = %d, want %d", r.name, got, len(logs))
		}
	}
	if d := h.deploy("d1"); d.Received != 3 || d.State != atoll.StateSuperseded {
		t.Errorf("d1 = %+v, want 3 received, superseded", d)
	}

	// A batch straddling the applied index applies only the new tail.
	tail := h.logs(DeleteSite{Name: "blog"})
	resp := h.f.ApplyBatch(append(slices.Clone(logs[len(logs)-2:]), tail...))
	if resp[0] != nil || resp[1] != nil || resp[2] != nil {
		t.Errorf("straddling batch answered %v", resp)
	}
	if _, err := h.f.Site("blog"); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("new entry of a straddling batch not applied: %v", err)
	}
}

func TestNonCommandEntriesAreRecorded(t *testing.T) {
	h := newFSM(t)
	resp := h.f.ApplyBatch([]*hraft.Log{
		{Index: 1, Term: 1, Type: hraft.LogConfiguration, Data: []byte("not a command")},
		{Index: 2, Term: 2, Type: hraft.LogConfiguration},
	})
	if resp[0] != nil || resp[1] != nil {
		t.Errorf("responses = %v, want nil", resp)
	}
	if got := h.f.AppliedIndex(); got != 2 {
		t.Errorf("AppliedIndex = %d, want 2", got)
	}
	// Survives a reopen.
	dir := h.f.dir
	h.f.Close()
	f, err := OpenFSM(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.AppliedIndex(); got != 2 {
		t.Errorf("AppliedIndex after reopen = %d, want 2", got)
	}
}

func TestClosedFSM(t *testing.T) {
	h := newFSM(t)
	seed(h)
	if err := h.f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := h.f.Site("blog"); !errors.Is(err, ErrClosed) {
		t.Errorf("Site on closed FSM: %v", err)
	}
	if _, err := h.f.File("live1", "/f/00000.html"); !errors.Is(err, ErrClosed) {
		t.Errorf("File on closed FSM: %v", err)
	}
	idx := h.f.AppliedIndex()
	if resp := h.f.ApplyBatch(h.logs(DeleteSite{Name: "blog"})); !errors.Is(resp[0].(error), ErrClosed) {
		t.Errorf("ApplyBatch on closed FSM: %v", resp[0])
	}
	if got := h.f.AppliedIndex(); got != idx {
		t.Errorf("AppliedIndex moved to %d on a closed FSM", got)
	}
	if _, err := h.f.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Errorf("Snapshot on closed FSM: %v", err)
	}
}

func TestFileHotPath(t *testing.T) {
	h := newFSM(t)
	seed(h)
	want := manifest(3)[2]
	got, err := h.f.File("live1", want.Path)
	if err != nil || got != want.Hash {
		t.Fatalf("File = %q, %v; want %q", got, err, want.Hash)
	}
	for _, tc := range []struct{ deploy, path string }{{"live1", "/missing"}, {"nope", want.Path}, {"live1", ""}} {
		if _, err := h.f.File(tc.deploy, tc.path); !errors.Is(err, atoll.ErrNotFound) {
			t.Errorf("File(%q, %q) = %v, want ErrNotFound", tc.deploy, tc.path, err)
		}
	}
}

func BenchmarkFile(b *testing.B) {
	f, err := OpenFSM(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := &fsmHarness{f: f}
	files := manifest(10_000)
	var logs []*hraft.Log
	add := func(c Command) {
		data, _ := Encode(c)
		h.index++
		logs = append(logs, &hraft.Log{Index: h.index, Type: hraft.LogCommand, Data: data})
	}
	add(CreateSite{Name: "blog"})
	add(CreateDeploy{ID: "d1", Site: "blog", Files: len(files)})
	for _, bt := range BatchFiles("d1", files) {
		add(bt)
	}
	f.ApplyBatch(logs)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := f.File("d1", files[i%len(files)].Path); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// MarkReady's rules are kept beside the deploy, named by their hash in the
// deploy, and go with it.
func TestMarkReadyRules(t *testing.T) {
	h := newFSM(t)
	h.must(CreateSite{Name: "blog", Created: t0})
	rules := []byte("compiled rules")
	// Below the level the field means nothing, as to an older node.
	h.must(CreateDeploy{ID: "d0", Site: "blog", Files: 1, Created: t0, Message: "dropped"}, AddFiles{Deploy: "d0", Files: manifest(1)})
	h.must(MarkReady{Deploy: "d0", Bytes: 1, Rules: rules})
	if d, _ := h.f.Deploy("d0"); d.Rules != "" || d.Message != "" {
		t.Errorf("below the level: rules %q, message %q recorded", d.Rules, d.Message)
	}
	h.must(SetFeatureLevel{Level: atoll.LevelFeatureLevels})
	h.must(CreateDeploy{ID: "d1", Site: "blog", Files: 1, Created: t0, Message: "kept"}, AddFiles{Deploy: "d1", Files: manifest(1)})
	h.must(MarkReady{Deploy: "d1", Bytes: 1, Rules: rules})
	d, err := h.f.Deploy("d1")
	if err != nil {
		t.Fatal(err)
	}
	if want := hashOf(string(rules)); d.Rules != want || d.Message != "kept" {
		t.Errorf("Deploy.Rules = %q, want %q; message %q", d.Rules, want, d.Message)
	}
	if got, err := h.f.Rules("d1"); err != nil || string(got) != string(rules) {
		t.Errorf("Rules = %q, %v", got, err)
	}
	h.must(DeleteSite{Name: "blog"})
	if _, err := h.f.Rules("d1"); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("rules of a deleted deploy: %v, want not found", err)
	}
}

// A locked site keeps its live deploy: every publish is refused until it
// is unlocked.
func TestLockSite(t *testing.T) {
	h := newFSM(t)
	seed(h)
	h.must(LockSite{Name: "blog", Locked: true}, LockSite{Name: "blog", Locked: true})
	if err := h.apply(Publish{Deploy: "rdy1", At: t0}); !errors.Is(err, atoll.ErrConflict) {
		t.Fatalf("publish to a locked site: %v, want conflict", err)
	}
	if err := h.apply(Publish{Deploy: "live1", At: t0}); err != nil {
		t.Errorf("publishing the live deploy again: %v, want a no-op", err)
	}
	h.must(UpdateSite{Name: "blog", Domains: []string{"blog.example.com"}})
	if !h.site("blog").Locked {
		t.Error("UpdateSite dropped the lock")
	}
	h.must(LockSite{Name: "blog", Locked: false}, Publish{Deploy: "rdy1", At: t0})
	if got := h.site("blog").Published; got != "rdy1" {
		t.Errorf("after unlock the live deploy is %s, want rdy1", got)
	}
	if err := h.apply(LockSite{Name: "nope", Locked: true}); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("lock of an unknown site: %v", err)
	}
}
