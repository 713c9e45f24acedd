package builder_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/builder/buildertest"
	"github.com/atoll-hosting/atoll/raft"
	"github.com/atoll-hosting/atoll/siterules"
)

const (
	goodRedirects = "/old /new 301\n/* /index.html 200\nnot a rule\n"
	badHeaders    = "/*\n  Content-Length: 3\n"
)

// newLevel2Server is a builder API over a store at the feature level that
// brings site rules and deploy messages, as a cluster of this binary is
// once its leader raised it.
func newLevel2Server(t *testing.T, cfg builder.Config) *buildertest.Server {
	t.Helper()
	srv := buildertest.NewServer(t, cfg)
	if err := srv.Meta.Apply(context.Background(), raft.SetFeatureLevel{Level: atoll.LevelFeatureLevels}); err != nil {
		t.Fatal(err)
	}
	return srv
}

// The digest flow compiles the rules once the blobs are stored, records
// them with the deploy, and answers the skipped lines as warnings.
func TestRulesCompiledAtFinalize(t *testing.T) {
	srv := newLevel2Server(t, builder.Config{})
	createSite(t, srv, "blog")
	files := map[string]string{"/index.html": sha("home"), "/_redirects": sha(goodRedirects)}
	var created atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/blog/deploys", contentType: "application/json", body: manifest(files)}, http.StatusCreated, &created)
	if created.Rules != "" || len(created.Warnings) != 0 {
		t.Fatalf("rules before the blobs are stored: %+v", created)
	}
	putBlob(t, srv, "home")
	putBlob(t, srv, goodRedirects)
	var ready atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/deploys/" + created.ID + "/finalize"}, http.StatusOK, &ready)
	if len(ready.Warnings) != 1 || !strings.HasPrefix(ready.Warnings[0], "_redirects:3: ") {
		t.Errorf("warnings %q, want one for _redirects:3", ready.Warnings)
	}
	d, err := srv.Meta.Deploy(created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Rules == "" || d.Rules != ready.Rules {
		t.Fatalf("recorded rules %q, answered %q", d.Rules, ready.Rules)
	}
	enc, err := srv.Meta.Rules(created.ID)
	if err != nil {
		t.Fatal(err)
	}
	r, err := siterules.Decode(enc)
	if err != nil || len(r.Redirects) != 2 {
		t.Fatalf("decoded %+v, %v: want 2 rules", r, err)
	}
}

// Rules that are refused fail the deploy with the file and line; a tar
// upload records no deploy at all.
func TestRulesRefused(t *testing.T) {
	srv := newLevel2Server(t, builder.Config{})
	createSite(t, srv, "blog")
	resp := do(t, srv, request{method: "POST", path: "/v1/sites/blog/deploys", contentType: "application/x-tar",
		body: makeTar(t, false, member{name: "index.html", body: "x"}, member{name: "_headers", body: badHeaders})})
	if msg := resp.errorBody(t).Error; resp.status != http.StatusBadRequest || !strings.Contains(msg, "_headers:2") {
		t.Errorf("tar: got %d %q, want 400 naming _headers:2", resp.status, msg)
	}
	if ds, _ := srv.Meta.Deploys("blog"); len(ds) != 0 {
		t.Errorf("a refused tar left %d deploys", len(ds))
	}

	// The same file in a digest deploy, uploaded after the create.
	bad := badHeaders + "# uploaded later\n"
	files := map[string]string{"/index.html": sha("home"), "/_headers": sha(bad)}
	var created atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/blog/deploys", contentType: "application/json", body: manifest(files)}, http.StatusCreated, &created)
	putBlob(t, srv, "home")
	putBlob(t, srv, bad)
	resp = do(t, srv, request{method: "POST", path: "/v1/deploys/" + created.ID + "/publish"})
	if msg := resp.errorBody(t).Error; resp.status != http.StatusBadRequest || !strings.Contains(msg, "_headers:2") {
		t.Errorf("publish: got %d %q, want 400 naming _headers:2", resp.status, msg)
	}
	if d, _ := srv.Meta.Deploy(created.ID); d.State != atoll.StateFailed {
		t.Errorf("deploy with refused rules is %s, want failed", d.State)
	}
}

// Below the feature level the rule files are published as plain files,
// nothing is recorded, and the answer says why.
func TestRulesBelowFeatureLevel(t *testing.T) {
	cfg := builder.Config{RequireFeature: func(ctx context.Context, feature string, level int) error {
		return &atoll.FeatureError{Feature: feature, Need: level, Have: atoll.LevelBase, HeldBy: []string{"n2 (dev, level 1)"}}
	}}
	srv := buildertest.NewServer(t, cfg)
	createSite(t, srv, "blog")
	var d atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/blog/deploys", contentType: "application/x-tar",
		body: makeTar(t, false, member{name: "index.html", body: "x"}, member{name: "_redirects", body: goodRedirects})}, http.StatusCreated, &d)
	if d.Rules != "" || len(d.Warnings) != 1 || !strings.Contains(d.Warnings[0], "plain files") || !strings.Contains(d.Warnings[0], "n2") {
		t.Errorf("got rules %q, warnings %q: want none recorded and one warning naming n2", d.Rules, d.Warnings)
	}
	if _, err := srv.Meta.Rules(d.ID); err == nil {
		t.Error("rules recorded below the feature level")
	}
}

// A deploy's message is recorded with it, checked, and needs the feature
// level.
func TestDeployMessage(t *testing.T) {
	srv := newLevel2Server(t, builder.Config{})
	createSite(t, srv, "blog")
	var d atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/blog/deploys?message=new+footer", contentType: "application/x-tar",
		body: makeTar(t, false, member{name: "index.html", body: "x"})}, http.StatusCreated, &d)
	if got, _ := srv.Meta.Deploy(d.ID); got.Message != "new footer" || d.Message != "new footer" {
		t.Errorf("message recorded %q, answered %q", got.Message, d.Message)
	}
	resp := do(t, srv, request{method: "POST", path: "/v1/sites/blog/deploys?message=a%0Ab", contentType: "application/json", body: manifest(map[string]string{"/a": sha("a")})})
	if resp.status != http.StatusBadRequest || !strings.Contains(resp.errorBody(t).Error, "one line") {
		t.Errorf("two-line message: %d %s", resp.status, resp.body)
	}

	low := buildertest.NewServer(t, builder.Config{RequireFeature: func(ctx context.Context, feature string, level int) error {
		return &atoll.FeatureError{Feature: feature, Need: level, Have: atoll.LevelBase}
	}})
	createSite(t, low, "blog")
	resp = do(t, low, request{method: "POST", path: "/v1/sites/blog/deploys?message=x", contentType: "application/json", body: manifest(map[string]string{"/a": sha("a")})})
	if resp.status != http.StatusConflict || !strings.Contains(resp.errorBody(t).Error, "feature level") {
		t.Errorf("message below the level: %d %s", resp.status, resp.body)
	}
}

// A dry run checks the manifest and says what it would require, and
// records nothing.
func TestDryRun(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	createSite(t, srv, "blog")
	putBlob(t, srv, "stored")
	var d atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/blog/deploys?dry_run=true", contentType: "application/json",
		body: manifest(map[string]string{"/a": sha("stored"), "/b": sha("not stored"), "/.env": sha("secret")})}, http.StatusOK, &d)
	if d.ID != "" || d.Files != 2 || d.Skipped != 1 || len(d.Required) != 1 || d.Required[0] != sha("not stored") {
		t.Errorf("dry run answered %+v", d)
	}
	if ds, _ := srv.Meta.Deploys("blog"); len(ds) != 0 {
		t.Errorf("a dry run recorded %d deploys", len(ds))
	}
	resp := do(t, srv, request{method: "POST", path: "/v1/sites/blog/deploys?dry_run=true", contentType: "application/x-tar",
		body: makeTar(t, false, member{name: "index.html", body: "x"})})
	if resp.status != http.StatusBadRequest {
		t.Errorf("dry run of a tar: %d, want 400", resp.status)
	}
}

// A locked site keeps its live deploy: publishes and rollbacks are refused
// with a 409 that says how to unlock, a tar with publish=true before it is
// read; previews are unaffected.
func TestSiteLock(t *testing.T) {
	srv := newLevel2Server(t, builder.Config{})
	createSite(t, srv, "blog")
	var live, other atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/blog/deploys?publish=true", contentType: "application/x-tar",
		body: makeTar(t, false, member{name: "index.html", body: "live"})}, http.StatusCreated, &live)
	call(t, srv, request{method: "POST", path: "/v1/sites/blog/deploys", contentType: "application/x-tar",
		body: makeTar(t, false, member{name: "index.html", body: "next"})}, http.StatusCreated, &other)
	var site atoll.Site
	call(t, srv, request{method: "PUT", path: "/v1/sites/blog/lock"}, http.StatusOK, &site)
	if !site.Locked {
		t.Fatalf("lock answered %+v", site)
	}
	for _, req := range []request{
		{method: "POST", path: "/v1/deploys/" + other.ID + "/publish"},
		{method: "POST", path: "/v1/deploys/" + other.ID + "/publish?rollback=true"},
		{method: "POST", path: "/v1/sites/blog/deploys?publish=true", contentType: "application/x-tar", body: makeTar(t, false, member{name: "a", body: "b"})},
	} {
		resp := do(t, srv, req)
		if msg := resp.errorBody(t).Error; resp.status != http.StatusConflict || !strings.Contains(msg, "atoll site unlock blog") {
			t.Errorf("%s %s while locked: %d %q", req.method, req.path, resp.status, msg)
		}
	}
	if s, _ := srv.Meta.Site("blog"); s.Published != live.ID {
		t.Errorf("live deploy %s, want %s kept", s.Published, live.ID)
	}
	call(t, srv, request{method: "DELETE", path: "/v1/sites/blog/lock"}, http.StatusOK, &site)
	call(t, srv, request{method: "POST", path: "/v1/deploys/" + other.ID + "/publish"}, http.StatusOK, nil)
}
