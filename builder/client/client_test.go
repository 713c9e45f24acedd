package client_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/builder/buildertest"
	"github.com/atoll-hosting/atoll/builder/client"
)

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// sha is the content address of s.
var sha = atolltest.SHA256Hex[string]

// writeTree creates files (relative path -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func setup(t *testing.T) (*buildertest.Server, *client.Client) {
	t.Helper()
	srv := buildertest.NewServer(t, builder.Config{})
	c := client.New(srv.URL+"/", buildertest.Token)
	if _, err := c.CreateSite(ctx(t), "demo", nil, 0); err != nil {
		t.Fatalf("CreateSite: %v", err)
	}
	return srv, c
}

func manifestOf(t *testing.T, srv *buildertest.Server, id string) map[string]string {
	t.Helper()
	got := map[string]string{}
	if err := srv.Meta.Files(id, func(f atoll.File) error { got[f.Path] = f.Hash; return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestDeployDir deploys a directory, then redeploys it with one file
// changed: the second deploy uploads exactly one blob.
func TestDeployDir(t *testing.T) {
	srv, c := setup(t)
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"index.html":                "<h1>home</h1>",
		"about/index.html":          "<h1>about</h1>",
		"css/site.css":              "body{}",
		"copy.html":                 "<h1>home</h1>", // same content as index.html
		".well-known/security.txt":  "Contact: mailto:sec@example.com",
		".git/config":               "[core]",
		".env":                      "SECRET=1",
		"about/.DS_Store":           "junk",
		"deep/a/b/c/d/e/f/page.htm": "deep",
	})
	if err := os.Symlink("index.html", filepath.Join(dir, "alias.html")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("css", filepath.Join(dir, "styles")); err != nil { // a directory: not followed
		t.Fatal(err)
	}

	var last map[string]client.Progress
	var calls atomic.Int32
	opt := client.DeployOptions{Publish: true, Concurrency: 3, Progress: func(p client.Progress) {
		calls.Add(1)
		if last == nil {
			last = map[string]client.Progress{}
		}
		if prev := last[p.Phase]; p.Files < prev.Files || p.Bytes < prev.Bytes {
			t.Errorf("progress went backwards: %+v after %+v", p, prev)
		}
		last[p.Phase] = p
	}}
	d, err := c.DeployDir(ctx(t), dir, "demo", opt)
	if err != nil {
		t.Fatalf("DeployDir: %v", err)
	}
	if d.State != atoll.StatePublished {
		t.Errorf("state = %s, want published", d.State)
	}
	want := map[string]string{
		"/index.html":                sha("<h1>home</h1>"),
		"/copy.html":                 sha("<h1>home</h1>"),
		"/alias.html":                sha("<h1>home</h1>"),
		"/about/index.html":          sha("<h1>about</h1>"),
		"/css/site.css":              sha("body{}"),
		"/.well-known/security.txt":  sha("Contact: mailto:sec@example.com"),
		"/deep/a/b/c/d/e/f/page.htm": sha("deep"),
	}
	got := manifestOf(t, srv, d.ID)
	if len(got) != len(want) {
		t.Errorf("manifest has %d files, want %d: %v", len(got), len(want), got)
	}
	for p, h := range want {
		if got[p] != h {
			t.Errorf("manifest[%s] = %q, want %q", p, got[p], h)
		}
	}
	if n := srv.Blobs.Puts(); n != 5 {
		t.Errorf("first deploy stored %d blobs, want 5 (one per distinct content)", n)
	}
	if h, u := last[client.PhaseHash], last[client.PhaseUpload]; h.Files != 7 || h.Files != h.FilesTotal || u.Files != 5 || u.Bytes != u.BytesTotal {
		t.Errorf("final progress hash=%+v upload=%+v; want 7/7 files hashed, 5 uploaded, bytes complete", h, u)
	}

	// Redeploy with one file changed.
	writeTree(t, dir, map[string]string{"css/site.css": "body{color:red}"})
	d2, err := c.DeployDir(ctx(t), dir, "demo", client.DeployOptions{Publish: true})
	if err != nil {
		t.Fatalf("redeploy: %v", err)
	}
	if !slices.Equal(d2.Required, []string{sha("body{color:red}")}) {
		t.Errorf("redeploy required %v, want only the changed file", d2.Required)
	}
	if n := srv.Blobs.Puts(); n != 6 {
		t.Errorf("after redeploy %d blobs stored, want 6: exactly one uploaded", n)
	}
	old, err := c.Deploy(ctx(t), d.ID)
	if err != nil || old.State != atoll.StateSuperseded {
		t.Errorf("first deploy = %+v, %v; want superseded", old.Deploy, err)
	}

	// Unchanged: nothing to upload; not published, so the live deploy stays.
	d3, err := c.DeployDir(ctx(t), dir, "demo", client.DeployOptions{})
	if err != nil {
		t.Fatalf("third deploy: %v", err)
	}
	if d3.State != atoll.StateReady || len(d3.Required) != 0 || srv.Blobs.Puts() != 6 {
		t.Errorf("unchanged deploy = %+v required=%v puts=%d; want ready, nothing uploaded", d3.Deploy, d3.Required, srv.Blobs.Puts())
	}
	if site, _ := c.Site(ctx(t), "demo"); site.Published != d2.ID {
		t.Errorf("published = %s, want %s", site.Published, d2.ID)
	}

	// Rollback with the client.
	if _, err := c.Publish(ctx(t), d.ID); err == nil {
		t.Error("Publish of an older deploy succeeded; want it refused as a late build")
	}
	if _, err := c.Rollback(ctx(t), d.ID); err != nil {
		t.Fatal(err)
	}
	if site, _ := c.Site(ctx(t), "demo"); site.Published != d.ID {
		t.Errorf("after rollback published = %s, want %s", site.Published, d.ID)
	}
}

func TestDeployDirRefusesSymlinkOutside(t *testing.T) {
	srv, c := setup(t)
	dir, outside := t.TempDir(), t.TempDir()
	writeTree(t, dir, map[string]string{"index.html": "hi"})
	writeTree(t, outside, map[string]string{"secret.txt": "key"})
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(dir, "leak.txt")); err != nil {
		t.Fatal(err)
	}
	before := srv.Meta.State(t)
	_, err := c.DeployDir(ctx(t), dir, "demo", client.DeployOptions{Publish: true})
	if err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("err = %v, want a symlink-outside error", err)
	}
	if srv.Meta.State(t) != before || srv.Blobs.Puts() != 0 {
		t.Error("a refused directory changed the cluster")
	}
}

func TestDeployDirEmpty(t *testing.T) {
	_, c := setup(t)
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{".hidden": "x"})
	if _, err := c.DeployDir(ctx(t), dir, "demo", client.DeployOptions{}); err == nil || !strings.Contains(err.Error(), "no files") {
		t.Errorf("err = %v, want no files", err)
	}
}

// TestDeployDirRetriesUpload: a blob upload (here a batch) failing once
// with 503 is retried and the deploy succeeds.
func TestDeployDirRetriesUpload(t *testing.T) {
	srv, _ := setup(t)
	var failed atomic.Bool
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upload := r.Method == "PUT" || r.Method == "POST" && r.URL.Path == "/v1/blobs"
		if upload && failed.CompareAndSwap(false, true) {
			builder.WriteError(w, http.StatusServiceUnavailable, "try again")
			return
		}
		srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(flaky.Close)
	c := client.New(flaky.URL, buildertest.Token)
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a.html": "a", "b.html": "b"})
	d, err := c.DeployDir(ctx(t), dir, "demo", client.DeployOptions{Publish: true, Concurrency: 1})
	if err != nil {
		t.Fatalf("DeployDir: %v", err)
	}
	if !failed.Load() || d.State != atoll.StatePublished || srv.Blobs.Puts() != 2 {
		t.Errorf("failed once=%v state=%s puts=%d; want a retried upload and a published deploy", failed.Load(), d.State, srv.Blobs.Puts())
	}
}

// TestClientCalls exercises every call and the error type.
func TestClientCalls(t *testing.T) {
	srv, c := setup(t)
	cx := ctx(t)

	if _, err := c.CreateSite(cx, "blog", []string{"blog.example.com"}, 3); err != nil {
		t.Fatal(err)
	}
	sites, err := c.Sites(cx)
	if err != nil || len(sites) != 2 || sites[0].Name != "blog" || sites[0].Retain != 3 {
		t.Fatalf("Sites = %+v, %v", sites, err)
	}
	site, err := c.UpdateSite(cx, "blog", []string{}, 0)
	if err != nil || len(site.Domains) != 0 || site.Retain != 3 {
		t.Errorf("UpdateSite(clear domains) = %+v, %v", site, err)
	}
	site, err = c.UpdateSite(cx, "blog", nil, 7)
	if err != nil || site.Retain != 7 {
		t.Errorf("UpdateSite(retain 7) = %+v, %v", site, err)
	}

	// Digest flow by hand.
	d, err := c.CreateDeploy(cx, "blog", map[string]string{"/index.html": sha("hi"), "/empty.txt": sha("")})
	if err != nil || len(d.Required) != 2 {
		t.Fatalf("CreateDeploy = %+v, %v", d, err)
	}
	_, err = c.Publish(cx, d.ID)
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != 409 || len(ae.Missing) != 2 {
		t.Fatalf("early Publish err = %#v, want *Error 409 with 2 missing", err)
	}
	if msg := ae.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "409") {
		t.Errorf("Error() = %q, want one line with the status", msg)
	}
	if _, err := c.UploadBlob(cx, sha("hi"), strings.NewReader("hi"), 2); err != nil {
		t.Fatal(err)
	}
	if b, err := c.UploadBlob(cx, sha(""), strings.NewReader(""), 0); err != nil || b.Size != 0 {
		t.Fatalf("empty blob: %+v, %v", b, err)
	}
	_, err = c.UploadBlob(cx, sha("x"), strings.NewReader("y"), 1)
	if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, "does not match") {
		t.Errorf("mismatched upload err = %v, want 400 mismatch", err)
	}
	if d, err = c.Finalize(cx, d.ID); err != nil || d.State != atoll.StateReady {
		t.Fatalf("Finalize = %+v, %v", d.Deploy, err)
	}
	if d, err = c.Publish(cx, d.ID); err != nil || d.State != atoll.StatePublished || d.URL != "http://blog.localhost:8080/" {
		t.Fatalf("Publish = %+v, %v", d, err)
	}

	// One-shot gzipped tar.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "./index.html", Typeflag: tar.TypeReg, Size: 5, Mode: 0o644})
	tw.Write([]byte("hello"))
	tw.Close()
	zw.Close()
	td, err := c.UploadTar(cx, "blog", &buf, true, true)
	if err != nil || td.State != atoll.StatePublished || td.Files != 1 {
		t.Fatalf("UploadTar = %+v, %v", td.Deploy, err)
	}
	list, err := c.Deploys(cx, "blog")
	if err != nil || len(list) != 2 || list[0].ID != td.ID || list[1].State != atoll.StateSuperseded {
		t.Errorf("Deploys = %+v, %v", list, err)
	}
	if got, err := c.Deploy(cx, td.ID); err != nil || got.PreviewURL != "http://"+td.ID+"--blog.localhost:8080/" {
		t.Errorf("Deploy = %+v, %v", got, err)
	}

	if err := c.DeleteSite(cx, "blog"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Site(cx, "blog")
	if !errors.As(err, &ae) || ae.Status != 404 || !strings.Contains(ae.Message, "blog") {
		t.Errorf("Site after delete err = %v, want 404 naming the site", err)
	}

	bad := client.New(srv.URL, "wrong")
	if _, err := bad.Sites(cx); !errors.As(err, &ae) || ae.Status != 401 {
		t.Errorf("wrong token err = %v, want 401", err)
	}
}

// TestStatusAndNodes decodes node's routes (served here by a stand-in) and
// a non-JSON error body.
func TestStatusAndNodes(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		builder.WriteJSON(w, 200, atoll.Status{ID: "n1", Role: "core", RaftState: "Leader", LeaderID: "n1", AppliedIndex: 42,
			Nodes: []atoll.NodeStatus{{Node: atoll.Node{ID: "n1", Role: "core"}, Suffrage: "voter"}}})
	})
	mux.HandleFunc("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		builder.WriteJSON(w, 200, atoll.NodeList{Nodes: []atoll.NodeStatus{{Node: atoll.Node{ID: "n1"}, Suffrage: "voter", Blobs: 3}}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := client.New(srv.URL, "t")
	st, err := c.Status(ctx(t))
	if err != nil || st.RaftState != "Leader" || st.AppliedIndex != 42 || len(st.Nodes) != 1 || st.Nodes[0].Suffrage != "voter" {
		t.Errorf("Status = %+v, %v", st, err)
	}
	nodes, err := c.Nodes(ctx(t))
	if err != nil || len(nodes) != 1 || nodes[0].ID != "n1" || nodes[0].Blobs != 3 {
		t.Errorf("Nodes = %+v, %v", nodes, err)
	}
	_, err = c.Deploy(ctx(t), "x") // the mux's plain-text 404
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != 404 || ae.Message == "" {
		t.Errorf("plain 404 err = %#v", err)
	}
}

// TestAgainstRealBlobStore runs DeployDir, a redeploy and a rollback over
// the real blob store (the other tests keep blobs in a plain folder).
func TestAgainstRealBlobStore(t *testing.T) {
	store, err := blobstore.New(blobstore.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	api, err := builder.New(builder.Config{TempDir: t.TempDir()}, buildertest.NewMeta(t), realBlobs{store})
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(buildertest.Serve(t, api).URL, buildertest.Token)
	if _, err := c.CreateSite(ctx(t), "demo", []string{"www.example.com"}, 0); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"index.html": strings.Repeat("<p>compressible</p>", 200), "a.txt": "a"})
	d1, err := c.DeployDir(ctx(t), dir, "demo", client.DeployOptions{Publish: true})
	if err != nil || d1.State != atoll.StatePublished || d1.Bytes != int64(19*200+1) || len(d1.Required) != 2 {
		t.Fatalf("DeployDir = %+v, %v", d1, err)
	}
	writeTree(t, dir, map[string]string{"a.txt": "b"})
	d2, err := c.DeployDir(ctx(t), dir, "demo", client.DeployOptions{Publish: true})
	if err != nil || !slices.Equal(d2.Required, []string{sha("b")}) {
		t.Fatalf("redeploy = %+v, %v; want only the changed blob required", d2, err)
	}
	if _, err := c.Rollback(ctx(t), d1.ID); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	list, err := c.Deploys(ctx(t), "demo")
	if err != nil || len(list) != 2 || list[0].ID != d2.ID || list[0].State != atoll.StateSuperseded || list[1].State != atoll.StatePublished {
		t.Errorf("deploys after rollback = %+v, %v", list, err)
	}
	if site, err := c.Site(ctx(t), "demo"); err != nil || site.Published != d1.ID {
		t.Errorf("site = %+v, %v; want %s live", site, err, d1.ID)
	}
	if _, err := c.CreateSite(ctx(t), "other", []string{"www.example.com"}, 0); err == nil {
		t.Error("a taken domain was accepted")
	}
}

type realBlobs struct{ s *blobstore.Store }

func (b realBlobs) Put(ctx context.Context, hash string, r io.Reader) (blobstore.Info, error) {
	return b.s.Put(ctx, hash, r)
}
func (b realBlobs) Stat(_ context.Context, hash string) (blobstore.Info, error) {
	return b.s.Stat(hash)
}

func (b realBlobs) StatMany(_ context.Context, hashes []string) (map[string]blobstore.Info, error) {
	out := make(map[string]blobstore.Info)
	for _, h := range hashes {
		if info, err := b.s.Stat(h); err == nil {
			out[h] = info
		}
	}
	return out, nil
}

// TestUploadTooLarge: the server refuses before reading the body; the
// client still reports the server's 413, not a broken pipe.
func TestUploadTooLarge(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{MaxBlobBytes: 1024, MaxTarBytes: 1024})
	c := client.New(srv.URL, buildertest.Token)
	if _, err := c.CreateSite(ctx(t), "demo", nil, 0); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 4<<20)
	var ae *client.Error
	_, err := c.UploadBlob(ctx(t), sha(big), strings.NewReader(big), int64(len(big)))
	if !errors.As(err, &ae) || ae.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("UploadBlob err = %v, want *Error 413", err)
	}
	_, err = c.UploadTar(ctx(t), "demo", strings.NewReader(big), false, false)
	if !errors.As(err, &ae) || ae.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("UploadTar err = %v, want *Error 413", err)
	}
}

func (b realBlobs) Open(_ context.Context, hash, encoding string) (*os.File, int64, error) {
	return b.s.Open(hash, encoding)
}
