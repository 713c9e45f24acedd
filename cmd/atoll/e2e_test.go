package main

// End-to-end tests: the real atoll binary, started as a process on loopback,
// driven through its CLI and read through its edge with a plain HTTP client,
// the way a user would.
//
// Tests that are self-contained and whose verdicts no timing decides (the
// single node and cluster walk-throughs, tokens and secrets, TLS, site
// rules, HTTPS, ACME against Pebble, formats and versions, quotas, scrub,
// metrics, streaming, on-the-fly compression) call t.Parallel: they run
// after the others, four at a time under make test (-parallel 4; they
// mostly wait on processes), which keeps the package within make test's
// budget on two cores. Tests that measure time or load a node on purpose
// (crash, chaos, stalls, floods, expiry, frozen or cut-off peers, disk
// full, descriptor exhaustion, the status page's 5 s) stay serial, alone
// on the machine.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

func TestMain(m *testing.M) { os.Exit(atolltest.Main(m)) }

// newServer is a single node that bootstraps its own cluster (a no-op once
// its data dir holds one), not started.
func newServer(t *testing.T) *atolltest.Server {
	t.Helper()
	return atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true})
}

// writeTree writes files (path -> content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := atolltest.WriteTree(dir, files); err != nil {
		t.Fatal(err)
	}
}

// checkAnswer checks an edge answer's status, its body unless wantBody is
// "", and the given headers ("" for one that must be absent).
func checkAnswer(t *testing.T, resp *http.Response, body string, wantStatus int, wantBody string, wantHeader map[string]string) {
	t.Helper()
	if resp.StatusCode != wantStatus {
		t.Fatalf("status: got %d, want %d (body %q)", resp.StatusCode, wantStatus, body)
	}
	if wantBody != "" && body != wantBody {
		t.Errorf("body: got %q, want %q", body, wantBody)
	}
	for k, v := range wantHeader {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("header %s: got %q, want %q", k, got, v)
		}
	}
}

// deployID returns the deploy id `atoll deploy` printed.
func deployID(t *testing.T, out string) string {
	t.Helper()
	id := atolltest.DeployID(out)
	if id == "" {
		t.Fatalf("no deploy id in output:\n%s", out)
	}
	return id
}

func TestEndToEndSingleNode(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.Start()

	random := make([]byte, 100<<10)
	rand.Read(random)
	site := t.TempDir()
	writeTree(t, site, map[string]string{
		"index.html":      "<h1>home v1</h1>",
		"about.html":      "<h1>about</h1>",
		"docs/index.html": "<h1>docs</h1>",
		"404.html":        "<h1>custom not found</h1>",
		"app.js":          strings.Repeat("console.log('atoll is compressible');\n", 1000),
		"img/photo.bin":   string(random),
		".git/config":     "not deployed",
	})

	// Sites: create, bad names, list.
	s.MustCLI("site", "create", "blog", "--domain", "blog.example.com")
	if errOut := s.FailCLI("site", "create", "Bad_Name"); !strings.Contains(errOut, "Bad_Name") {
		t.Errorf("bad site name error %q does not name the input", errOut)
	}
	s.FailCLI("site", "create", "blog")
	if out := s.MustCLI("site", "list"); !strings.Contains(out, "blog") || !strings.Contains(out, "blog.example.com") {
		t.Errorf("site list:\n%s\nwant blog with its domain", out)
	}

	// First deploy uploads every file, then it is live.
	out := s.MustCLI("deploy", site, "--site", "blog")
	id1 := deployID(t, out)
	if !strings.Contains(out, "6 files, 6 uploaded") {
		t.Errorf("first deploy output:\n%s\nwant 6 files, 6 uploaded", out)
	}

	// Variants are made in the background after the upload is
	// acknowledged: identity bytes until then, br moments later.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, _ := s.Get("GET", "blog.localhost", "/app.js", "Accept-Encoding", "br")
		if resp.Header.Get("Content-Encoding") == "br" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("app.js never served as br after the deploy (Content-Encoding %q)", resp.Header.Get("Content-Encoding"))
		}
	}

	t.Run("serving rules", func(t *testing.T) {
		cases := []struct {
			name, method, host, path string
			hdr                      []string
			wantStatus               int
			wantBody                 string
			wantHeader               map[string]string
		}{
			{name: "root index", method: "GET", host: "blog.localhost", path: "/", wantStatus: 200, wantBody: "<h1>home v1</h1>",
				wantHeader: map[string]string{"Content-Type": "text/html; charset=utf-8", "Cache-Control": "public, max-age=0, must-revalidate"}},
			{name: "port in host", method: "GET", host: "blog.localhost:8080", path: "/", wantStatus: 200, wantBody: "<h1>home v1</h1>"},
			{name: "custom domain", method: "GET", host: "blog.example.com", path: "/about", wantStatus: 200, wantBody: "<h1>about</h1>"},
			{name: "clean url", method: "GET", host: "blog.localhost", path: "/about", wantStatus: 200, wantBody: "<h1>about</h1>"},
			{name: "dir redirect", method: "GET", host: "blog.localhost", path: "/docs", wantStatus: 301, wantHeader: map[string]string{"Location": "/docs/"}},
			{name: "dir index", method: "GET", host: "blog.localhost", path: "/docs/", wantStatus: 200, wantBody: "<h1>docs</h1>"},
			{name: "custom 404", method: "GET", host: "blog.localhost", path: "/nope", wantStatus: 404, wantBody: "<h1>custom not found</h1>"},
			{name: "dot dir not deployed", method: "GET", host: "blog.localhost", path: "/.git/config", wantStatus: 404},
			{name: "traversal stays inside", method: "GET", host: "blog.localhost", path: "/docs/../about.html", wantStatus: 200, wantBody: "<h1>about</h1>"},
			{name: "unknown site", method: "GET", host: "nope.localhost", path: "/", wantStatus: 404},
			{name: "post refused", method: "POST", host: "blog.localhost", path: "/", wantStatus: 405, wantHeader: map[string]string{"Allow": "GET, HEAD"}},
			{name: "head", method: "HEAD", host: "blog.localhost", path: "/", wantStatus: 200, wantHeader: map[string]string{"Content-Length": "16"}},
			{name: "range", method: "GET", host: "blog.localhost", path: "/index.html", hdr: []string{"Range", "bytes=4-7"}, wantStatus: 206, wantBody: "home",
				wantHeader: map[string]string{"Content-Range": "bytes 4-7/16"}},
			{name: "range unsatisfiable", method: "GET", host: "blog.localhost", path: "/index.html", hdr: []string{"Range", "bytes=100-"}, wantStatus: 416},
			{name: "brotli", method: "GET", host: "blog.localhost", path: "/app.js", hdr: []string{"Accept-Encoding", "gzip, br"}, wantStatus: 200,
				wantHeader: map[string]string{"Content-Encoding": "br", "Vary": "Accept-Encoding", "Content-Type": "text/javascript; charset=utf-8"}},
			{name: "gzip only", method: "GET", host: "blog.localhost", path: "/app.js", hdr: []string{"Accept-Encoding", "gzip"}, wantStatus: 200,
				wantHeader: map[string]string{"Content-Encoding": "gzip"}},
			{name: "preview host", method: "GET", host: id1 + "--blog.localhost", path: "/", wantStatus: 200, wantBody: "<h1>home v1</h1>"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := s.Get(tc.method, tc.host, tc.path, tc.hdr...)
				checkAnswer(t, resp, body, tc.wantStatus, tc.wantBody, tc.wantHeader)
			})
		}
		resp, body := s.Get("GET", "blog.localhost", "/img/photo.bin")
		if resp.StatusCode != 200 || body != string(random) {
			t.Errorf("binary file: status %d, %d bytes; want 200 and the uploaded %d bytes", resp.StatusCode, len(body), len(random))
		}
		etag := resp.Header.Get("ETag")
		if resp, _ := s.Get("GET", "blog.localhost", "/img/photo.bin", "If-None-Match", etag); resp.StatusCode != 304 {
			t.Errorf("If-None-Match %s: got %d, want 304", etag, resp.StatusCode)
		}
	})

	// A redeploy with one changed file uploads exactly that file, and the
	// publish is atomic for a visitor reading all along.
	writeTree(t, site, map[string]string{"index.html": "<h1>home v2!</h1>"})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mixed []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, b, err := s.Fetch(context.Background(), "GET", "blog.localhost", "/")
			if err != nil {
				mixed = append(mixed, err.Error())
				return
			}
			if got := string(b); got != "<h1>home v1</h1>" && got != "<h1>home v2!</h1>" {
				mixed = append(mixed, fmt.Sprintf("%d %q", resp.StatusCode, got))
			}
		}
	}()
	out = s.MustCLI("deploy", site, "--site", "blog")
	close(stop)
	wg.Wait()
	if len(mixed) > 0 {
		t.Errorf("reads during publish saw neither version: %v", mixed)
	}
	id2 := deployID(t, out)
	if !strings.Contains(out, "6 files, 1 uploaded") {
		t.Errorf("redeploy output:\n%s\nwant 6 files, 1 uploaded", out)
	}
	if _, body := s.Get("GET", "blog.localhost", "/"); body != "<h1>home v2!</h1>" {
		t.Errorf("after redeploy: got %q, want v2", body)
	}
	// The old deploy is still reachable by its preview host.
	if _, body := s.Get("GET", id1+"--blog.localhost", "/"); body != "<h1>home v1</h1>" {
		t.Errorf("preview of %s: got %q, want v1", id1, body)
	}

	// Rollback publishes the first deploy again.
	s.MustCLI("rollback", "--site", "blog", id1)
	if _, body := s.Get("GET", "blog.localhost", "/"); body != "<h1>home v1</h1>" {
		t.Errorf("after rollback: got %q, want v1", body)
	}
	history := s.MustCLI("deploys", "--site", "blog")
	for _, id := range []string{id1, id2} {
		if !strings.Contains(history, id) {
			t.Errorf("deploys list lacks %s:\n%s", id, history)
		}
	}
	_, deploysBefore := s.API("GET", "/v1/sites/blog/deploys", s.Token(), "", nil)
	_, statusBefore := s.API("GET", "/v1/status", s.Token(), "", nil)

	// Crash and restart: published content and history survive, and no
	// command is applied twice (the deploy records are exactly as before).
	s.Kill(syscall.SIGKILL)
	s.Start()
	if _, body := s.Get("GET", "blog.localhost", "/"); body != "<h1>home v1</h1>" {
		t.Errorf("after restart: got %q, want v1 (the rolled-back deploy)", body)
	}
	_, deploysAfter := s.API("GET", "/v1/sites/blog/deploys", s.Token(), "", nil)
	if a, b := mustJSON(t, deploysBefore), mustJSON(t, deploysAfter); a != b {
		t.Errorf("deploys changed across restart:\nbefore %s\nafter  %s", a, b)
	}
	_, statusAfter := s.API("GET", "/v1/status", s.Token(), "", nil)
	if b, a := statusBefore["applied_index"].(float64), statusAfter["applied_index"].(float64); a < b {
		t.Errorf("applied index went back across restart: %v -> %v", b, a)
	}
	// The restarted node took office again and with it a census: status
	// (waiting for it) shows the node and no problem.
	if got, errOut, code := s.CLI("status", "--wait", "20s"); code != 0 || !strings.Contains(got, "Leader") || !strings.Contains(got, "no problems") {
		t.Errorf("status after restart: exit %d\n%s%s\nwant the node as Leader and no problems", code, got, errOut)
	}

	// One-shot tar.gz upload with ?publish=true.
	tgz := atolltest.TarGz(map[string]string{"./index.html": "<h1>from tar</h1>", "./css/site.css": "body{}"})
	s.MustCLI("site", "create", "tarsite")
	status, body := s.API("POST", "/v1/sites/tarsite/deploys?publish=true", s.Token(), "application/gzip", bytes.NewReader(tgz))
	if status != http.StatusCreated {
		t.Fatalf("tar upload: status %d %v, want 201", status, body)
	}
	if _, got := s.Get("GET", "tarsite.localhost", "/"); got != "<h1>from tar</h1>" {
		t.Errorf("tar site: got %q", got)
	}

	// Bad input through the real API: clear errors, server keeps serving.
	bad := []struct {
		name, method, path, token, ctype, body string
		want                                   int
	}{
		{"no token", "GET", "/v1/sites", "", "", "", 401},
		{"wrong token", "GET", "/v1/sites", "wrong", "", "", 401},
		{"unknown site", "GET", "/v1/sites/ghost", s.Token(), "", "", 404},
		{"malformed json", "POST", "/v1/sites", s.Token(), "application/json", "{", 400},
		{"traversal in manifest", "POST", "/v1/sites/blog/deploys", s.Token(), "application/json",
			`{"files":{"/../etc/passwd":"` + strings.Repeat("a", 64) + `"}}`, 400},
		{"hash mismatch", "PUT", "/v1/blobs/" + strings.Repeat("a", 64), s.Token(), "", "hello", 400},
		{"unknown deploy", "POST", "/v1/deploys/zzzz/publish", s.Token(), "", "", 404},
	}
	for _, tc := range bad {
		status, body := s.API(tc.method, tc.path, tc.token, tc.ctype, strings.NewReader(tc.body))
		if status != tc.want || body["error"] == nil {
			t.Errorf("%s: got %d %v, want %d with an error message", tc.name, status, body, tc.want)
		}
	}
	s.FailCLI("site", "list", "--token", "wrong")
	if _, body := s.Get("GET", "blog.localhost", "/"); body != "<h1>home v1</h1>" {
		t.Errorf("after bad input: got %q, want v1", body)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
