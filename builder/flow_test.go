package builder_test

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/builder/buildertest"
	"github.com/atoll-hosting/atoll/raft"
	"github.com/atoll-hosting/atoll/raft/rafttest"
)

func TestSiteLifecycle(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})

	var site atoll.Site
	call(t, srv, request{method: "POST", path: "/v1/sites", body: []byte(`{"name":"demo","domains":["WWW.Example.com.","www.example.com"]}`)}, 201, &site)
	if site.Name != "demo" || !slices.Equal(site.Domains, []string{"www.example.com"}) || site.Retain != atoll.DefaultRetain || site.Created.IsZero() {
		t.Errorf("created site = %+v; want demo with [www.example.com], retain %d, a creation time", site, atoll.DefaultRetain)
	}
	call(t, srv, request{method: "POST", path: "/v1/sites", body: []byte(`{"name":"blog","retain":3}`)}, 201, nil)

	var list atoll.SiteList
	call(t, srv, request{method: "GET", path: "/v1/sites"}, 200, &list)
	var names []string
	for _, s := range list.Sites {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"blog", "demo"}) {
		t.Errorf("sites = %v, want [blog demo]", names)
	}

	call(t, srv, request{method: "PATCH", path: "/v1/sites/demo", body: []byte(`{"retain":5}`)}, 200, &site)
	if site.Retain != 5 || !slices.Equal(site.Domains, []string{"www.example.com"}) {
		t.Errorf("after retain patch: %+v; want retain 5 and domains kept", site)
	}
	call(t, srv, request{method: "PATCH", path: "/v1/sites/demo", body: []byte(`{"domains":["example.org"]}`)}, 200, &site)
	call(t, srv, request{method: "GET", path: "/v1/sites/demo"}, 200, &site)
	if site.Retain != 5 || !slices.Equal(site.Domains, []string{"example.org"}) {
		t.Errorf("after domains patch: %+v; want retain 5, domains [example.org]", site)
	}
	// The released domain can go to another site.
	call(t, srv, request{method: "PATCH", path: "/v1/sites/blog", body: []byte(`{"domains":["www.example.com"]}`)}, 200, nil)
	call(t, srv, request{method: "PATCH", path: "/v1/sites/demo", body: []byte(`{"domains":[]}`)}, 200, &site)
	if len(site.Domains) != 0 {
		t.Errorf("domains = %v after clearing", site.Domains)
	}

	res := do(t, srv, request{method: "DELETE", path: "/v1/sites/demo"})
	if res.status != http.StatusNoContent || len(res.body) != 0 {
		t.Errorf("delete: got %d %q, want 204 and no body", res.status, res.body)
	}
	call(t, srv, request{method: "GET", path: "/v1/sites/demo"}, 404, nil)
}

// TestDigestFlow walks create -> required -> upload -> publish, with the
// publish refused while a blob is missing.
func TestDigestFlow(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	createSite(t, srv, "demo")
	index, css := "<h1>hi</h1>", "body{}"
	putBlob(t, srv, css) // already stored: not required

	var d atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/demo/deploys", body: manifest(map[string]string{
		"/index.html":      sha(index),
		"about/index.html": sha(index), // same content twice: required once
		"/css/site.css":    sha(css),
	})}, 201, &d)
	if d.State != atoll.StateUploading || d.Files != 3 || d.Site != "demo" || len(d.ID) != 10 {
		t.Errorf("created deploy = %+v; want 10-char id, uploading, 3 files", d.Deploy)
	}
	if !slices.Equal(d.Required, []string{sha(index)}) {
		t.Errorf("required = %v, want [%s]", d.Required, sha(index))
	}
	if d.URL != "http://demo.localhost:8080/" || d.PreviewURL != "http://"+d.ID+"--demo.localhost:8080/" {
		t.Errorf("url, preview_url = %q, %q", d.URL, d.PreviewURL)
	}

	// Publish before the upload: 409 naming the missing blob; nothing goes live.
	res := do(t, srv, request{method: "POST", path: "/v1/deploys/" + d.ID + "/publish"})
	if e := res.errorBody(t); res.status != 409 || !slices.Equal(e.Missing, []string{sha(index)}) {
		t.Fatalf("early publish: got %d missing=%v; want 409 missing=[%s]", res.status, e.Missing, sha(index))
	}
	res = do(t, srv, request{method: "POST", path: "/v1/deploys/" + d.ID + "/finalize"})
	if e := res.errorBody(t); res.status != 409 || len(e.Missing) != 1 {
		t.Fatalf("early finalize: got %d missing=%v; want 409 with one missing", res.status, e.Missing)
	}
	if s, _ := srv.Meta.Site("demo"); s.Published != "" {
		t.Fatalf("site published %q before its blobs were stored", s.Published)
	}

	putBlob(t, srv, index)
	call(t, srv, request{method: "POST", path: "/v1/deploys/" + d.ID + "/publish"}, 200, &d)
	if d.State != atoll.StatePublished || d.PublishedAt.IsZero() {
		t.Errorf("published deploy = %+v", d.Deploy)
	}
	wantBytes := int64(2*len(index) + len(css))
	call(t, srv, request{method: "GET", path: "/v1/deploys/" + d.ID}, 200, &d)
	if d.State != atoll.StatePublished || d.Bytes != wantBytes || d.Received != 3 {
		t.Errorf("stored deploy = %+v; want published, %d bytes, 3 received", d.Deploy, wantBytes)
	}
	if s, _ := srv.Meta.Site("demo"); s.Published != d.ID {
		t.Errorf("site.Published = %q, want %q", s.Published, d.ID)
	}
	if h, _ := srv.Meta.File(d.ID, "/about/index.html"); h != sha(index) {
		t.Errorf("manifest /about/index.html = %q (relative path should be normalized)", h)
	}
	// Finalizing a published deploy changes nothing.
	call(t, srv, request{method: "POST", path: "/v1/deploys/" + d.ID + "/finalize"}, 200, &d)
	if d.State != atoll.StatePublished {
		t.Errorf("state after late finalize = %s", d.State)
	}
	// A second upload of a stored blob is fine.
	call(t, srv, request{method: "PUT", path: "/v1/blobs/" + sha(index), body: []byte(index), contentType: "application/octet-stream"}, 200, nil)
}

func TestFinalizeThenPublish(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	createSite(t, srv, "demo")
	var d atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/demo/deploys", body: manifest(map[string]string{"/a": sha("a")})}, 201, &d)
	putBlob(t, srv, "a")
	call(t, srv, request{method: "POST", path: "/v1/deploys/" + d.ID + "/finalize"}, 200, &d)
	if d.State != atoll.StateReady || d.Bytes != 1 {
		t.Errorf("finalized = %+v; want ready with 1 byte", d.Deploy)
	}
	call(t, srv, request{method: "POST", path: "/v1/deploys/" + d.ID + "/publish"}, 200, &d)
	if d.State != atoll.StatePublished {
		t.Errorf("state = %s, want published", d.State)
	}
}

func TestDeployWithAllBlobsStoredIsReady(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	createSite(t, srv, "demo")
	putBlob(t, srv, "a")
	res := do(t, srv, request{method: "POST", path: "/v1/sites/demo/deploys", body: manifest(map[string]string{"/a": sha("a"), "/b": sha("a")})})
	var d atoll.DeployResponse
	if err := json.Unmarshal(res.body, &d); err != nil || res.status != 201 {
		t.Fatalf("got %d %s", res.status, res.body)
	}
	if d.State != atoll.StateReady || d.Bytes != 2 || !strings.Contains(string(res.body), `"required":[]`) {
		t.Errorf("deploy = %s; want ready, 2 bytes, \"required\": []", res.body)
	}
	// Other answers leave "required" out.
	res = do(t, srv, request{method: "GET", path: "/v1/deploys/" + d.ID})
	if strings.Contains(string(res.body), "required") {
		t.Errorf("GET deploy = %s; want no \"required\"", res.body)
	}
}

// TestRedeployRequiresOnlyChanges: a second deploy with one changed file
// needs exactly that file's blob.
func TestRedeployRequiresOnlyChanges(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	createSite(t, srv, "demo")
	files := map[string]string{}
	for i := range 20 {
		content := fmt.Sprintf("file %d", i)
		files[fmt.Sprintf("/f%02d.html", i)] = sha(content)
		putBlob(t, srv, content)
	}
	var d atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/demo/deploys", body: manifest(files)}, 201, &d)
	call(t, srv, request{method: "POST", path: "/v1/deploys/" + d.ID + "/publish"}, 200, nil)

	files["/f07.html"] = sha("file 7, edited")
	call(t, srv, request{method: "POST", path: "/v1/sites/demo/deploys", body: manifest(files)}, 201, &d)
	if !slices.Equal(d.Required, []string{sha("file 7, edited")}) {
		t.Errorf("required = %v, want only the edited file's hash", d.Required)
	}
}

// TestRollback publishes an older retained deploy again.
func TestRollback(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	createSite(t, srv, "demo")
	deploy := func(content string) string {
		var d atoll.DeployResponse
		call(t, srv, request{method: "POST", path: "/v1/sites/demo/deploys?publish=true", contentType: "application/x-tar",
			body: makeTar(t, false, member{name: "index.html", body: content})}, 201, &d)
		return d.ID
	}
	v1, v2 := deploy("v1"), deploy("v2")

	var list atoll.DeployList
	call(t, srv, request{method: "GET", path: "/v1/sites/demo/deploys"}, 200, &list)
	if len(list.Deploys) != 2 || list.Deploys[0].ID != v2 || list.Deploys[1].ID != v1 {
		t.Fatalf("deploys = %+v; want [%s %s], newest first", list.Deploys, v2, v1)
	}
	if list.Deploys[1].State != atoll.StateSuperseded || list.Deploys[1].PreviewURL == "" {
		t.Errorf("older deploy = %+v; want superseded with a preview url", list.Deploys[1])
	}

	var d atoll.DeployResponse
	// An older deploy is not published by accident (a late build)...
	resp := do(t, srv, request{method: "POST", path: "/v1/deploys/" + v1 + "/publish"})
	if msg := resp.errorBody(t).Error; resp.status != 409 || !strings.Contains(msg, v1) || !strings.Contains(msg, v2) {
		t.Errorf("late publish of %s: %d %q, want 409 naming %s and %s", v1, resp.status, msg, v1, v2)
	}
	// ...but on purpose, as a rollback.
	call(t, srv, request{method: "POST", path: "/v1/deploys/" + v1 + "/publish?rollback=true"}, 200, &d)
	if d.State != atoll.StatePublished {
		t.Errorf("rolled back deploy state = %s", d.State)
	}
	if s, _ := srv.Meta.Site("demo"); s.Published != v1 {
		t.Errorf("site.Published = %s, want %s after rollback", s.Published, v1)
	}
	if now, _ := srv.Meta.Deploy(v2); now.State != atoll.StateSuperseded {
		t.Errorf("newer deploy state = %s, want superseded", now.State)
	}
}

// TestTarUpload covers a gzipped one-shot upload with ?publish=true: pax
// global header, "./" prefixes, directories, and a plain tar without publish.
func TestTarUpload(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	createSite(t, srv, "demo")
	body := makeTar(t, true,
		member{name: "pax_global_header", typ: tar.TypeXGlobalHeader},
		member{name: "./", typ: tar.TypeDir},
		member{name: "./index.html", body: "<h1>home</h1>"},
		member{name: "./css/", typ: tar.TypeDir},
		member{name: "./css/site.css", body: "body{}"},
		member{name: "copy.html", body: "<h1>home</h1>"},
		member{name: "./" + strings.Repeat("long/", 30) + "deep.txt", body: "deep"}, // > 100 bytes: pax/GNU name
	)
	var d atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/demo/deploys?publish=true", contentType: "application/gzip", body: body}, 201, &d)
	if d.State != atoll.StatePublished || d.Files != 4 || d.Bytes != int64(2*13+6+4) || d.URL == "" {
		t.Errorf("deploy = %+v url=%q; want published, 4 files, %d bytes, a url", d.Deploy, d.URL, 2*13+6+4)
	}
	if s, _ := srv.Meta.Site("demo"); s.Published != d.ID {
		t.Errorf("site.Published = %q, want %q", s.Published, d.ID)
	}
	var paths []string
	srv.Meta.Files(d.ID, func(f atoll.File) error { paths = append(paths, f.Path); return nil })
	want := []string{"/" + strings.Repeat("long/", 30) + "deep.txt", "/copy.html", "/css/site.css", "/index.html"}
	sort.Strings(want)
	if !slices.Equal(paths, want) {
		t.Errorf("manifest paths = %v, want %v", paths, want)
	}
	if got := srv.Blobs.Hashes(); len(got) != 3 {
		t.Errorf("stored %d blobs, want 3 (identical content once)", len(got))
	}

	// Plain tar, not published: ready, and the site keeps its live deploy.
	var d2 atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/demo/deploys", contentType: "application/x-tar",
		body: makeTar(t, false, member{name: "index.html", body: "<h1>next</h1>"})}, 201, &d2)
	if d2.State != atoll.StateReady {
		t.Errorf("state = %s, want ready", d2.State)
	}
	if s, _ := srv.Meta.Site("demo"); s.Published != d.ID {
		t.Errorf("site.Published = %q, want still %q", s.Published, d.ID)
	}
}

// TestLargeManifestIsBatched checks that a big manifest reaches the log as
// several AddFiles commands, each under raft.MaxBatchBytes.
func TestLargeManifestIsBatched(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	createSite(t, srv, "demo")
	var (
		mu    sync.Mutex
		added []raft.AddFiles
	)
	srv.Meta.BeforeApply(func(cmd raft.Command) error {
		if af, ok := cmd.(raft.AddFiles); ok {
			mu.Lock()
			added = append(added, af)
			mu.Unlock()
		}
		return nil
	})
	const n = 20000
	files := make(map[string]string, n)
	for i := range n {
		files[fmt.Sprintf("/assets/img/%06d/picture.webp", i)] = sha(fmt.Sprint(i % 100))
	}
	var d atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/demo/deploys", body: manifest(files)}, 201, &d)
	if len(d.Required) != 100 {
		t.Errorf("required %d hashes, want 100", len(d.Required))
	}
	mu.Lock()
	defer mu.Unlock()
	batches, total := len(added), 0
	for _, af := range added {
		total += len(af.Files)
		if b, err := raft.Encode(af); err != nil || len(b) > raft.MaxBatchBytes {
			t.Errorf("batch encodes to %d bytes (err %v), over %d", len(b), err, raft.MaxBatchBytes)
		}
	}
	if batches < 2 || total != n {
		t.Errorf("%d batches with %d files; want several batches and %d files", batches, total, n)
	}
	if got, _ := srv.Meta.Deploy(d.ID); got.Received != n {
		t.Errorf("received = %d, want %d", got.Received, n)
	}
}

// TestApplyFailures: a failure halfway marks the deploy failed (it can never
// be published), and "no leader" is a 503 the client can retry.
func TestApplyFailures(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	createSite(t, srv, "demo")
	srv.Meta.BeforeApply(func(cmd raft.Command) error {
		if _, ok := cmd.(raft.AddFiles); ok {
			return errors.New("disk on fire")
		}
		return nil
	})
	res := do(t, srv, request{method: "POST", path: "/v1/sites/demo/deploys", body: manifest(map[string]string{"/a": sha("a")})})
	if e := res.errorBody(t); res.status != 500 || strings.Contains(e.Error, "fire") {
		t.Errorf("got %d %q; want 500 without internal detail", res.status, e.Error)
	}
	deploys, _ := srv.Meta.Deploys("demo")
	if len(deploys) != 1 || deploys[0].State != atoll.StateFailed {
		t.Fatalf("deploys = %+v; want one failed", deploys)
	}
	putBlob(t, srv, "a")
	call(t, srv, request{method: "POST", path: "/v1/deploys/" + deploys[0].ID + "/publish"}, 409, nil)

	srv.Meta.BeforeApply(func(raft.Command) error { return fmt.Errorf("apply: %w", raft.ErrNotLeader) })
	res = do(t, srv, request{method: "POST", path: "/v1/sites", body: []byte(`{"name":"other"}`)})
	if res.errorBody(t); res.status != 503 || res.header.Get("Retry-After") == "" {
		t.Errorf("no leader: got %d Retry-After=%q; want 503 with Retry-After", res.status, res.header.Get("Retry-After"))
	}
}

// TestRotateAdminToken: PUT /v1/admin-token replaces the recorded hash:
// the old token is refused from then on, the new one works, the hook sees
// the new secret, and a weak or deploy-looking token is refused first.
func TestRotateAdminToken(t *testing.T) {
	var rotated []string
	srv := buildertest.NewServer(t, builder.Config{AdminTokenRotated: func(tok string) error {
		rotated = append(rotated, tok)
		return nil
	}})
	const next = "a-new-admin-token-of-some-length"
	for _, tc := range []struct{ name, body string }{
		{"too short", `{"token":"short"}`},
		{"with a space", `{"token":"a new admin token of some length"}`},
		{"deploy token prefix", `{"token":"atl_site_0123456789abcdef0123456789"}`},
		{"empty", `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			call(t, srv, request{method: "PUT", path: "/v1/admin-token", body: []byte(tc.body)}, 400, nil)
		})
	}
	call(t, srv, request{method: "PUT", path: "/v1/admin-token", body: jsonBody(t, atoll.AdminTokenRequest{Token: next})}, 204, nil)
	call(t, srv, request{method: "GET", path: "/v1/sites", token: buildertest.Token}, 401, nil)
	call(t, srv, request{method: "GET", path: "/v1/sites", token: next}, 200, nil)
	if len(rotated) != 1 || rotated[0] != next {
		t.Errorf("AdminTokenRotated saw %q, want [%q]", rotated, next)
	}
}

func TestNoTokenConfiguredRefusesAll(t *testing.T) {
	store := rafttest.Open(t) // no admin token recorded
	blobs := buildertest.NewBlobs(t.TempDir())
	api, err := builder.New(builder.Config{TempDir: t.TempDir()}, store, blobs)
	if err != nil {
		t.Fatal(err)
	}
	srv := &buildertest.Server{Server: buildertest.Serve(t, api), API: api, Blobs: blobs}
	call(t, srv, request{method: "GET", path: "/v1/sites", token: "anything"}, 401, nil)
	call(t, srv, request{method: "GET", path: "/v1/sites", token: ""}, 401, nil)
}

func TestNewValidates(t *testing.T) {
	if _, err := builder.New(builder.Config{}, nil, nil); err == nil {
		t.Error("New without meta and blobs succeeded")
	}
	_, err := builder.New(builder.Config{MaxFiles: -1, TempDir: t.TempDir()}, rafttest.Open(t), buildertest.NewBlobs(t.TempDir()))
	if err == nil {
		t.Error("New with a negative limit succeeded")
	}
}

// TestLateBuildRefused: a build created before the live deploy, published
// after it, does not replace it unless asked as a rollback.
func TestLateBuildRefused(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	createSite(t, srv, "demo")
	var late, live atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/demo/deploys", contentType: "application/json",
		body: manifest(map[string]string{"/index.html": sha("slow build")})}, http.StatusCreated, &late)
	call(t, srv, request{method: "POST", path: "/v1/sites/demo/deploys?publish=true", contentType: "application/x-tar",
		body: makeTar(t, false, member{name: "index.html", body: "fast build"})}, http.StatusCreated, &live)
	putBlob(t, srv, "slow build")
	resp := do(t, srv, request{method: "POST", path: "/v1/deploys/" + late.ID + "/publish"})
	if msg := resp.errorBody(t).Error; resp.status != http.StatusConflict || !strings.Contains(msg, late.ID) || !strings.Contains(msg, live.ID) {
		t.Fatalf("late publish: %d %q, want 409 naming %s and %s", resp.status, msg, late.ID, live.ID)
	}
	if s, _ := srv.Meta.Site("demo"); s.Published != live.ID {
		t.Errorf("live deploy %s, want %s still", s.Published, live.ID)
	}
	call(t, srv, request{method: "POST", path: "/v1/deploys/" + late.ID + "/publish?rollback=true"}, http.StatusOK, nil)
	if s, _ := srv.Meta.Site("demo"); s.Published != late.ID {
		t.Errorf("after an explicit rollback the live deploy is %s, want %s", s.Published, late.ID)
	}
}
