package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
)

// The limits a deploy token lives within, through the real binary: dot-files
// are never published, abandoned uploads expire and their blobs are
// collected, and the per-site limits answer 429 and 413.

// dotTree is a site with the dot-files a build folder typically holds: two
// that must not be published, and .well-known, which must.
var dotTree = map[string]string{
	"index.html":                "<h1>home</h1>",
	".env":                      "SECRET=hunter2",
	".git/config":               "[remote \"origin\"]",
	".well-known/security.txt":  "Contact: mailto:security@example.com",
	"assets/site.css":           "body{}",
	"assets/.well-known-not/ok": "not under .well-known: a dot segment",
}

// TestEndToEndDotFiles: a tar upload holding .env and .git/config publishes
// neither and says it skipped them (3 with the nested dot-folder), and
// `atoll deploy` of the same tree says the same.
func TestEndToEndDotFiles(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.Start()
	waitAdmin(t, s)
	s.MustCLI("site", "create", "blog")

	status, body := s.API("POST", "/v1/sites/blog/deploys?publish=true", s.Token(), "application/x-tar",
		bytes.NewReader(atolltest.Tar(dotTree)))
	if status != http.StatusCreated {
		t.Fatalf("tar upload: %d %v", status, body)
	}
	if got, want := body["skipped"], float64(3); got != want {
		t.Errorf("tar upload: skipped %v, want %v (.env, .git/config, assets/.well-known-not/ok)", got, want)
	}
	if got, want := body["files"], float64(3); got != want {
		t.Errorf("tar upload: %v files in the manifest, want %v", got, want)
	}
	checkDotFilesServed(t, s)

	dir := t.TempDir()
	writeTree(t, dir, dotTree)
	out := s.MustCLI("deploy", dir, "--site", "blog")
	if !strings.Contains(out, "skipped 3 dot-files") {
		t.Errorf("atoll deploy printed:\n%s\nwant \"skipped 3 dot-files\"", out)
	}
	id := deployID(t, out)
	var d atoll.DeployResponse
	if err := s.Call(t.Context(), "GET", "/v1/deploys/"+id, nil, &d); err != nil {
		t.Fatal(err)
	}
	if d.Files != 3 {
		t.Errorf("atoll deploy: %d files in the manifest, want 3", d.Files)
	}
	checkDotFilesServed(t, s)

	// A manifest naming dot-files by hand has them dropped the same way.
	h := atolltest.SHA256Hex("x")
	manifest := fmt.Sprintf(`{"files": {"/index.html": %q, "/.env": %q, "/a/.git/HEAD": %q}}`, h, h, h)
	status, body = s.API("POST", "/v1/sites/blog/deploys", s.Token(), "application/json", strings.NewReader(manifest))
	if status != http.StatusCreated || body["skipped"] != float64(2) || body["files"] != float64(1) {
		t.Errorf("manifest with dot-files: %d %v, want 201 with 1 file and 2 skipped", status, body)
	}
}

// checkDotFilesServed checks what the live deploy of blog serves.
func checkDotFilesServed(t *testing.T, s *atolltest.Server) {
	t.Helper()
	for path, want := range map[string]int{
		"/":                          http.StatusOK,
		"/.well-known/security.txt":  http.StatusOK,
		"/assets/site.css":           http.StatusOK,
		"/.env":                      http.StatusNotFound,
		"/.git/config":               http.StatusNotFound,
		"/assets/.well-known-not/ok": http.StatusNotFound,
	} {
		if resp, body := s.Get("GET", "blog.localhost", path); resp.StatusCode != want {
			t.Errorf("GET %s: %d %q, want %d", path, resp.StatusCode, body, want)
		}
	}
}

// TestEndToEndDeployExpiry: a manifest whose blobs are never all uploaded
// fails once --deploy-expiry has passed, saying why, and the blob that was
// uploaded for it is collected, while the live site keeps its own.
func TestEndToEndDeployExpiry(t *testing.T) {
	s := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true,
		Flags: []string{"--deploy-expiry", "5s", "--gc-grace", "0s", "--repair-interval", "500ms"}})
	s.Start()
	waitAdmin(t, s)
	s.MustCLI("site", "create", "blog")
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"index.html": "<h1>live</h1>"})
	s.MustCLI("deploy", dir, "--site", "blog")

	// The abandoned upload: a manifest of two blobs, one sent, one never.
	sent, never := "abandoned content", "never uploaded"
	manifest := fmt.Sprintf(`{"files": {"/a.html": %q, "/b.html": %q}}`, atolltest.SHA256Hex(sent), atolltest.SHA256Hex(never))
	var created atoll.DeployResponse
	if err := s.Call(t.Context(), "POST", "/v1/sites/blog/deploys", strings.NewReader(manifest), &created); err != nil {
		t.Fatal(err)
	}
	if status, body := s.API("PUT", "/v1/blobs/"+atolltest.SHA256Hex(sent), s.Token(), "application/octet-stream",
		strings.NewReader(sent)); status/100 != 2 {
		t.Fatalf("upload: %d %v", status, body)
	}
	if got := nodeBlobs(t, s); got != 2 {
		t.Fatalf("the node holds %d blobs, want 2 (the live page and the abandoned upload's)", got)
	}

	d := waitDeploy(t, s, created.ID, func(d atoll.DeployResponse) bool { return d.State != atoll.StateUploading })
	if d.State != atoll.StateFailed || !strings.Contains(d.Reason, "--deploy-expiry") {
		t.Fatalf("abandoned deploy: state %s, reason %q; want failed, naming --deploy-expiry", d.State, d.Reason)
	}
	deadline := time.Now().Add(30 * time.Second)
	for nodeBlobs(t, s) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the node still holds %d blobs 30s after the deploy expired, want 1 (the live page)", nodeBlobs(t, s))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, body := s.Get("GET", "blog.localhost", "/"); body != "<h1>live</h1>" {
		t.Errorf("the live site serves %q after garbage collection", body)
	}
}

// nodeBlobs is how many blobs the single node of s holds.
func nodeBlobs(t *testing.T, s *atolltest.Server) int64 {
	t.Helper()
	var list atoll.NodeList
	if err := s.Call(t.Context(), "GET", "/v1/nodes", nil, &list); err != nil {
		t.Fatal(err)
	}
	return list.Nodes[0].Blobs
}

// waitDeploy polls deploy id until done accepts it (30s at most).
func waitDeploy(t *testing.T, s *atolltest.Server, id string, done func(atoll.DeployResponse) bool) atoll.DeployResponse {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var d atoll.DeployResponse
		if err := s.Call(t.Context(), "GET", "/v1/deploys/"+id, nil, &d); err != nil {
			t.Fatal(err)
		}
		if done(d) || time.Now().After(deadline) {
			return d
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEndToEndSiteLimits: the cluster defaults of --site-max-uploading and
// --site-max-bytes answer 429 and 413 naming the limit, a tar that unpacks
// past the site's bytes is refused, and an admin's `atoll site update`
// changes one site's limits (bytes, uploads in progress, files), which a
// deploy token cannot.
func TestEndToEndSiteLimits(t *testing.T) {
	t.Parallel()
	s := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true,
		Flags: []string{"--site-max-uploading", "2", "--site-max-bytes", "1KiB"}})
	s.Start()
	waitAdmin(t, s)
	s.MustCLI("site", "create", "blog")
	token := strings.TrimSpace(s.MustCLI("token", "create", "--site", "blog"))

	// Deploys in progress: the third is refused until the admin raises it.
	manifest := func(i int) *strings.Reader {
		return strings.NewReader(fmt.Sprintf(`{"files": {"/index.html": %q}}`, atolltest.SHA256Hex(fmt.Sprint("page ", i))))
	}
	for i := range 2 {
		if status, body := s.API("POST", "/v1/sites/blog/deploys", token, "application/json", manifest(i)); status != http.StatusCreated {
			t.Fatalf("deploy %d: %d %v", i, status, body)
		}
	}
	wantError(t, s, token, "application/json", manifest(2), http.StatusTooManyRequests, "--site-max-uploading")
	if status, _ := s.API("PATCH", "/v1/sites/blog", token, "application/json", strings.NewReader(`{"max_uploading": 10}`)); status != http.StatusForbidden {
		t.Errorf("a deploy token raising its own site's limit: %d, want 403", status)
	}
	if out := s.MustCLI("site", "update", "blog", "--max-uploading", "3"); !strings.Contains(out, "max-uploading 3") {
		t.Errorf("site update printed %q", out)
	}
	if status, body := s.API("POST", "/v1/sites/blog/deploys", token, "application/json", manifest(2)); status != http.StatusCreated {
		t.Fatalf("deploy after raising --max-uploading: %d %v", status, body)
	}
	s.MustCLI("site", "update", "blog", "--max-uploading", "100")

	// Bytes of one deploy: a tar over 1KiB, and a gzipped one that
	// unpacks to 64 MiB from a few KiB, are refused while they stream.
	big := map[string]string{"index.html": strings.Repeat("x", 2000)}
	wantError(t, s, token, "application/x-tar", bytes.NewReader(atolltest.Tar(big)), http.StatusRequestEntityTooLarge, "--site-max-bytes")
	bomb := atolltest.TarGz(map[string]string{"index.html": strings.Repeat("\x00", 64<<20)})
	wantError(t, s, token, "application/gzip", bytes.NewReader(bomb), http.StatusRequestEntityTooLarge, "--site-max-bytes")
	s.MustCLI("site", "update", "blog", "--max-bytes", "4KiB")
	status, body := s.API("POST", "/v1/sites/blog/deploys", token, "application/x-tar", bytes.NewReader(atolltest.Tar(big)))
	if status != http.StatusCreated {
		t.Fatalf("tar after raising --max-bytes: %d %v", status, body)
	}
	// A manifest naming the stored 2000-byte file three times is over 4KiB
	// at create: refused, and the deploy recorded failed.
	h := atolltest.SHA256Hex(big["index.html"])
	thrice := fmt.Sprintf(`{"files": {"/a": %q, "/b": %q, "/c": %q}}`, h, h, h)
	wantError(t, s, token, "application/json", strings.NewReader(thrice), http.StatusRequestEntityTooLarge, "--max-bytes")

	// Files of one deploy.
	s.MustCLI("site", "update", "blog", "--max-files", "1")
	two := map[string]string{"a.html": "a", "b.html": "b"}
	wantError(t, s, token, "application/x-tar", bytes.NewReader(atolltest.Tar(two)), http.StatusRequestEntityTooLarge, "--max-files")

	var site atoll.Site
	if err := s.Call(t.Context(), "GET", "/v1/sites/blog", nil, &site); err != nil {
		t.Fatal(err)
	}
	if site.MaxBytes != 4<<10 || site.MaxUploading != 100 || site.MaxFiles != 1 {
		t.Errorf("site limits %d/%d/%d, want 4096/100/1", site.MaxBytes, site.MaxUploading, site.MaxFiles)
	}
	s.MustCLI("site", "update", "blog", "--max-files", "0") // back to the cluster default
	var after atoll.Site
	if err := s.Call(t.Context(), "GET", "/v1/sites/blog", nil, &after); err != nil || after.MaxFiles != 0 {
		t.Errorf("after --max-files 0: max_files %d (%v), want 0: the cluster default", after.MaxFiles, err)
	}
}

// wantError posts a deploy to blog with token and checks the status and
// that the error names the limit.
func wantError(t *testing.T, s *atolltest.Server, token, contentType string, body io.Reader, status int, limit string) {
	t.Helper()
	got, resp := s.API("POST", "/v1/sites/blog/deploys", token, contentType, body)
	if msg, _ := resp["error"].(string); got != status || !strings.Contains(msg, limit) {
		b, _ := json.Marshal(resp)
		t.Errorf("deploy (%s): %d %s, want %d naming %s", contentType, got, b, status, limit)
	}
}

// TestEndToEndStalledTarCounts: a tar upload that stalls halfway counts as
// a deploy in progress of its site, so a tenant cannot open uploads
// without end; once it is cut, the site may deploy again.
func TestEndToEndStalledTarCounts(t *testing.T) {
	s := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true, Flags: []string{"--site-max-uploading", "1"}})
	s.Start()
	waitAdmin(t, s)
	s.MustCLI("site", "create", "blog")

	conn, err := net.Dial("tcp", s.APIAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/sites/blog/deploys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/x-tar\r\nContent-Length: %d\r\n\r\n", s.Token(), 1<<20)
	conn.Write(make([]byte, 4096)) // and then nothing
	// Whatever the node answers the stalled upload, or its closing the
	// connection, before the test cuts it is a failure: say which.
	stalled := make(chan string, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			stalled <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		stalled <- fmt.Sprintf("%s %s", resp.Status, b)
	}()

	// A malformed manifest is admitted (then refused, 400, recording
	// nothing) or refused at admission (429): the answer tells which.
	cut := false
	probe := func() (int, string) {
		select {
		case got := <-stalled:
			if !cut {
				t.Fatalf("the stalled tar upload ended before the test cut it: %s", got)
			}
		default:
		}
		status, body := s.API("POST", "/v1/sites/blog/deploys", s.Token(), "application/json", strings.NewReader(`{"files": {}}`))
		msg, _ := body["error"].(string)
		return status, msg
	}
	waitStatus(t, probe, http.StatusTooManyRequests, "while a tar upload stalls")
	cut = true
	conn.Close()
	waitStatus(t, probe, http.StatusBadRequest, "once the stalled upload is cut")
}

// waitStatus polls probe until it answers want (30s at most).
func waitStatus(t *testing.T, probe func() (int, string), want int, when string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, msg := probe()
		if status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d %q, want %d", when, status, msg, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
