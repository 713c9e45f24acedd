package builder_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/builder/buildertest"
	"github.com/atoll-hosting/atoll/raft"
)

// newLevelServer is a builder API over a store at feature level level.
func newLevelServer(t *testing.T, level int) *buildertest.Server {
	t.Helper()
	srv := buildertest.NewServer(t, builder.Config{})
	if err := srv.Meta.Apply(context.Background(), raft.SetFeatureLevel{Level: level}); err != nil {
		t.Fatal(err)
	}
	return srv
}

// commandLog records the deploy commands an API applies.
type commandLog struct {
	mu      sync.Mutex
	creates []raft.CreateDeploy
	added   []atoll.File
}

func watchCommands(srv *buildertest.Server) *commandLog {
	l := &commandLog{}
	srv.Meta.BeforeApply(func(c raft.Command) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		switch c := c.(type) {
		case raft.CreateDeploy:
			l.creates = append(l.creates, c)
		case raft.AddFiles:
			l.added = append(l.added, c.Files...)
		}
		return nil
	})
	return l
}

// deployContents deploys path -> content through the digest flow (create,
// upload what is required, publish) and returns the create's answer and
// the published deploy.
func deployContents(t *testing.T, srv *buildertest.Server, site string, contents map[string]string) (created, published atoll.DeployResponse) {
	t.Helper()
	files := map[string]string{}
	for p, c := range contents {
		files[p] = sha(c)
	}
	call(t, srv, request{method: "POST", path: "/v1/sites/" + site + "/deploys", body: manifest(files)}, http.StatusCreated, &created)
	for _, c := range contents {
		if slices.Contains(created.Required, sha(c)) {
			putBlob(t, srv, c)
		}
	}
	call(t, srv, request{method: "POST", path: "/v1/deploys/" + created.ID + "/publish"}, http.StatusOK, &published)
	return created, published
}

// manifestOf returns a deploy's manifest as path -> hash.
func manifestOf(t *testing.T, srv *buildertest.Server, id string) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := srv.Meta.Files(id, func(f atoll.File) error { out[f.Path] = f.Hash; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func hashesOf(contents map[string]string) map[string]string {
	out := map[string]string{}
	for p, c := range contents {
		out[p] = sha(c)
	}
	return out
}

func sizeOf(contents map[string]string) int64 {
	n := 0
	for _, c := range contents {
		n += len(c)
	}
	return int64(n)
}

// v1 and v2 of a site: v2 changes /b.html, deletes /c.html, adds /d.html.
var (
	siteV1 = map[string]string{"/a.html": "aaaa", "/b.html": "bb", "/c.html": "c", "/x/e.css": "eeeee"}
	siteV2 = map[string]string{"/a.html": "aaaa", "/b.html": "bb, changed", "/d.html": "dddddd", "/x/e.css": "eeeee"}
)

// TestRedeployFromBase: at atoll.LevelDeployBase a redeploy is recorded
// from the live deploy: CreateDeploy names it and the paths to leave out,
// only the entries that differ travel as AddFiles, only their blobs are
// required, and the deploy comes out the same as a full one (manifest,
// file count, bytes).
func TestRedeployFromBase(t *testing.T) {
	srv := newLevelServer(t, atoll.LevelDeployBase)
	createSite(t, srv, "demo")
	_, v1 := deployContents(t, srv, "demo", siteV1)
	if v1.Base != "" || v1.Bytes != sizeOf(siteV1) {
		t.Fatalf("first deploy: %+v, want no base and %d bytes", v1.Deploy, sizeOf(siteV1))
	}

	cmds := watchCommands(srv)
	created, v2 := deployContents(t, srv, "demo", siteV2)
	if len(cmds.creates) != 1 || cmds.creates[0].Base != v1.ID || !slices.Equal(cmds.creates[0].Remove, []string{"/b.html", "/c.html"}) {
		t.Fatalf("creates %+v, want one from base %s removing /b.html and /c.html", cmds.creates, v1.ID)
	}
	want := []atoll.File{{Path: "/b.html", Hash: sha(siteV2["/b.html"])}, {Path: "/d.html", Hash: sha(siteV2["/d.html"])}}
	if !slices.Equal(cmds.added, want) {
		t.Errorf("AddFiles carried %v, want only the difference %v", cmds.added, want)
	}
	if wantReq := []string{sha(siteV2["/b.html"]), sha(siteV2["/d.html"])}; !sameSet(created.Required, wantReq) {
		t.Errorf("required %v, want %v", created.Required, wantReq)
	}
	if created.Base != v1.ID || created.Received != 4 || created.Files != 4 {
		t.Errorf("create answered %+v, want base %s, 4 of 4 files", created.Deploy, v1.ID)
	}
	if v2.State != atoll.StatePublished || v2.Files != 4 || v2.Bytes != sizeOf(siteV2) || v2.Base != v1.ID {
		t.Errorf("published %+v, want 4 files, %d bytes, base %s", v2.Deploy, sizeOf(siteV2), v1.ID)
	}
	if got, want := manifestOf(t, srv, v2.ID), hashesOf(siteV2); !mapsEqual(got, want) {
		t.Errorf("manifest %v, want %v", got, want)
	}
	d, err := srv.Meta.Deploy(v2.ID)
	if err != nil || d.Bytes != sizeOf(siteV2) || d.Base != v1.ID {
		t.Errorf("recorded deploy %+v (%v)", d, err)
	}

	// Nothing changed: no entry travels, the deploy is ready at once.
	cmds = watchCommands(srv)
	var same atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/demo/deploys", body: manifest(hashesOf(siteV2))}, http.StatusCreated, &same)
	if same.State != atoll.StateReady || len(same.Required) != 0 || same.Bytes != sizeOf(siteV2) || len(cmds.added) != 0 || same.Base != v2.ID {
		t.Errorf("unchanged redeploy: %+v required %v, %d entries sent; want ready from base %s, %d bytes, nothing sent",
			same.Deploy, same.Required, len(cmds.added), v2.ID, sizeOf(siteV2))
	}
}

// TestRedeployBelowDeployBase: below atoll.LevelDeployBase (a node of the
// cluster runs an older atoll) every deploy carries its whole manifest.
func TestRedeployBelowDeployBase(t *testing.T) {
	srv := newLevelServer(t, atoll.LevelFeatureLevels)
	createSite(t, srv, "demo")
	deployContents(t, srv, "demo", siteV1)
	cmds := watchCommands(srv)
	created, v2 := deployContents(t, srv, "demo", siteV2)
	if len(cmds.creates) != 1 || cmds.creates[0].Base != "" || len(cmds.creates[0].Remove) != 0 || len(cmds.added) != 4 {
		t.Fatalf("creates %+v with %d entries added, want no base and all 4 entries", cmds.creates, len(cmds.added))
	}
	if created.Base != "" || v2.Bytes != sizeOf(siteV2) {
		t.Errorf("deploy %+v, want no base, %d bytes", v2.Deploy, sizeOf(siteV2))
	}
	if got, want := manifestOf(t, srv, v2.ID), hashesOf(siteV2); !mapsEqual(got, want) {
		t.Errorf("manifest %v, want %v", got, want)
	}
}

// TestRedeployBaseGone: when the FSM refuses the base (pruned or replaced
// between the API's read and the apply: ErrConflict), the API records
// the whole manifest and checks every blob, so a base blob lost meanwhile
// is required again.
func TestRedeployBaseGone(t *testing.T) {
	srv := newLevelServer(t, atoll.LevelDeployBase)
	createSite(t, srv, "demo")
	deployContents(t, srv, "demo", siteV1)
	if err := srv.Blobs.Lose(sha(siteV1["/a.html"])); err != nil {
		t.Fatal(err)
	}
	var creates []raft.CreateDeploy
	srv.Meta.BeforeApply(func(c raft.Command) error {
		if c, ok := c.(raft.CreateDeploy); ok {
			creates = append(creates, c)
			if c.Base != "" {
				return fmt.Errorf("%w: base deploy %q no longer exists", atoll.ErrConflict, c.Base)
			}
		}
		return nil
	})
	created, v2 := deployContents(t, srv, "demo", siteV2)
	if len(creates) != 2 || creates[0].Base == "" || creates[1].Base != "" {
		t.Fatalf("creates %+v, want one from a base, then one without", creates)
	}
	if !slices.Contains(created.Required, sha(siteV1["/a.html"])) {
		t.Errorf("required %v: the whole check should ask for the lost base blob too", created.Required)
	}
	if v2.Base != "" || v2.Bytes != sizeOf(siteV2) {
		t.Errorf("deploy %+v, want no base, %d bytes", v2.Deploy, sizeOf(siteV2))
	}
	if got, want := manifestOf(t, srv, v2.ID), hashesOf(siteV2); !mapsEqual(got, want) {
		t.Errorf("manifest %v, want %v", got, want)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func mapsEqual(a, b map[string]string) bool { return maps.Equal(a, b) }
