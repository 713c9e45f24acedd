package main

// End-to-end tests: the real atoll binary, started as a process on loopback,
// driven through its CLI and read through its edge with a plain HTTP client,
// the way a user would.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/node/nodetest"
)

var atollBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "atoll-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	atollBin = filepath.Join(dir, "atoll")
	build := exec.Command("go", "build", "-race", "-o", atollBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build atoll:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is one running `atoll server` process.
type server struct {
	t                           *testing.T
	id                          string   // --id, default n1
	flags                       []string // more server flags, e.g. --join
	adminToken                  string   // --admin-token; "" lets bootstrap generate one
	bootstrap                   bool     // pass --bootstrap (default true)
	ca                          string   // cluster CA file: the API is https, and clients trust this CA
	hc                          *http.Client
	data                        string
	raftAddr, apiAddr, httpAddr string
	cmd                         *exec.Cmd
	out                         *bytes.Buffer
	done                        chan struct{}
}

// freeAddr returns a free loopback address below the ephemeral port range
// (see nodetest.FreeAddr).
func freeAddr(t *testing.T) string { return nodetest.FreeAddr(t) }

func newServer(t *testing.T) *server {
	t.Helper()
	return &server{
		t: t, id: "n1", bootstrap: true, data: filepath.Join(t.TempDir(), "data"),
		raftAddr: freeAddr(t), apiAddr: freeAddr(t), httpAddr: freeAddr(t),
	}
}

// start runs the server (with --bootstrap, a no-op once the data dir holds
// a cluster) and waits until it answers /readyz.
func (s *server) start() {
	s.t.Helper()
	s.launch("/readyz")
}

// launch starts the process and waits until path answers 200.
func (s *server) launch(path string) {
	t := s.t
	t.Helper()
	s.out = &bytes.Buffer{}
	args := []string{"server", "--id", s.id, "--data", s.data,
		"--raft-addr", s.raftAddr, "--api-addr", s.apiAddr, "--http-addr", s.httpAddr}
	if s.bootstrap {
		args = append(args, "--bootstrap")
	}
	if s.adminToken != "" {
		args = append(args, "--admin-token", s.adminToken)
	}
	s.cmd = exec.Command(atollBin, append(args, s.flags...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.kill(syscall.SIGKILL) })
	s.waitFor(path)
}

// waitFor waits until path on the API answers 200.
func (s *server) waitFor(path string) {
	t := s.t
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := s.httpClient().Get(s.apiURL() + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-s.done:
			t.Fatalf("server exited during start:\n%s", s.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready after 30s:\n%s", s.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// apiURL is the base URL of the API: https when the server has a CA.
func (s *server) apiURL() string {
	if s.ca != "" {
		return "https://" + s.apiAddr
	}
	return "http://" + s.apiAddr
}

// httpClient returns a client for the API, trusting s.ca if set.
func (s *server) httpClient() *http.Client {
	if s.ca == "" {
		return http.DefaultClient
	}
	if s.hc == nil {
		pem, err := os.ReadFile(s.ca)
		if err != nil {
			s.t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		s.hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	return s.hc
}

func (s *server) kill(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *server) token() string {
	s.t.Helper()
	if s.adminToken != "" {
		return s.adminToken
	}
	b, err := os.ReadFile(filepath.Join(s.data, "token"))
	if err != nil {
		s.t.Fatalf("read token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// cli runs an atoll client command against s and returns its output and
// exit code.
func (s *server) cli(args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	cmd := exec.Command(atollBin, args...)
	cmd.Env = append(os.Environ(), "ATOLL_API="+s.apiURL(), "ATOLL_TOKEN="+s.token(), "ATOLL_DATA="+s.data, "ATOLL_CA="+s.ca)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatalf("run atoll %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// mustCLI runs a client command that must succeed.
func (s *server) mustCLI(args ...string) string {
	s.t.Helper()
	out, errOut, code := s.cli(args...)
	if code != 0 {
		s.t.Fatalf("atoll %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// failCLI runs a client command that must fail with one line on stderr.
func (s *server) failCLI(args ...string) string {
	s.t.Helper()
	out, errOut, code := s.cli(args...)
	if code == 0 {
		s.t.Fatalf("atoll %s: exit 0, want failure\nstdout: %s", strings.Join(args, " "), out)
	}
	if lines := strings.Count(strings.TrimRight(errOut, "\n"), "\n") + 1; lines != 1 || errOut == "" {
		s.t.Fatalf("atoll %s: stderr has %d lines, want one:\n%s", strings.Join(args, " "), lines, errOut)
	}
	return errOut
}

// get fetches path from the edge with the given Host and extra headers.
func (s *server) get(method, host, path string, hdr ...string) (*http.Response, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, "http://"+s.httpAddr+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	tr := &http.Transport{DisableCompression: true}
	c := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp, string(body)
}

// api calls the builder API directly.
func (s *server) api(method, path, token, contentType string, body io.Reader) (int, map[string]any) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.apiURL()+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.httpClient().Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			s.t.Fatalf("%s %s: status %d, body not JSON: %q", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, m
}

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

var deployIDRe = regexp.MustCompile(`deploy ([a-z0-9]+)`)

func deployID(t *testing.T, out string) string {
	t.Helper()
	m := deployIDRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no deploy id in output:\n%s", out)
	}
	return m[1]
}

func TestEndToEndSingleNode(t *testing.T) {
	s := newServer(t)
	s.start()

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
	s.mustCLI("site", "create", "blog", "--domain", "blog.example.com")
	if errOut := s.failCLI("site", "create", "Bad_Name"); !strings.Contains(errOut, "Bad_Name") {
		t.Errorf("bad site name error %q does not name the input", errOut)
	}
	s.failCLI("site", "create", "blog")
	if out := s.mustCLI("site", "list"); !strings.Contains(out, "blog") || !strings.Contains(out, "blog.example.com") {
		t.Errorf("site list:\n%s\nwant blog with its domain", out)
	}

	// First deploy uploads every file, then it is live.
	out := s.mustCLI("deploy", site, "--site", "blog")
	id1 := deployID(t, out)
	if !strings.Contains(out, "6 files, 6 uploaded") {
		t.Errorf("first deploy output:\n%s\nwant 6 files, 6 uploaded", out)
	}

	// Variants are made in the background after the upload is
	// acknowledged: identity bytes until then, br moments later.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, _ := s.get("GET", "blog.localhost", "/app.js", "Accept-Encoding", "br")
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
				resp, body := s.get(tc.method, tc.host, tc.path, tc.hdr...)
				if resp.StatusCode != tc.wantStatus {
					t.Fatalf("status: got %d, want %d (body %q)", resp.StatusCode, tc.wantStatus, body)
				}
				if tc.wantBody != "" && body != tc.wantBody {
					t.Errorf("body: got %q, want %q", body, tc.wantBody)
				}
				for k, v := range tc.wantHeader {
					if got := resp.Header.Get(k); got != v {
						t.Errorf("header %s: got %q, want %q", k, got, v)
					}
				}
			})
		}
		resp, body := s.get("GET", "blog.localhost", "/img/photo.bin")
		if resp.StatusCode != 200 || body != string(random) {
			t.Errorf("binary file: status %d, %d bytes; want 200 and the uploaded %d bytes", resp.StatusCode, len(body), len(random))
		}
		etag := resp.Header.Get("ETag")
		if resp, _ := s.get("GET", "blog.localhost", "/img/photo.bin", "If-None-Match", etag); resp.StatusCode != 304 {
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
		c := &http.Client{}
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest("GET", "http://"+s.httpAddr+"/", nil)
			req.Host = "blog.localhost"
			resp, err := c.Do(req)
			if err != nil {
				mixed = append(mixed, err.Error())
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := string(b); got != "<h1>home v1</h1>" && got != "<h1>home v2!</h1>" {
				mixed = append(mixed, fmt.Sprintf("%d %q", resp.StatusCode, got))
			}
		}
	}()
	out = s.mustCLI("deploy", site, "--site", "blog")
	close(stop)
	wg.Wait()
	if len(mixed) > 0 {
		t.Errorf("reads during publish saw neither version: %v", mixed)
	}
	id2 := deployID(t, out)
	if !strings.Contains(out, "6 files, 1 uploaded") {
		t.Errorf("redeploy output:\n%s\nwant 6 files, 1 uploaded", out)
	}
	if _, body := s.get("GET", "blog.localhost", "/"); body != "<h1>home v2!</h1>" {
		t.Errorf("after redeploy: got %q, want v2", body)
	}
	// The old deploy is still reachable by its preview host.
	if _, body := s.get("GET", id1+"--blog.localhost", "/"); body != "<h1>home v1</h1>" {
		t.Errorf("preview of %s: got %q, want v1", id1, body)
	}

	// Rollback publishes the first deploy again.
	s.mustCLI("rollback", "--site", "blog", id1)
	if _, body := s.get("GET", "blog.localhost", "/"); body != "<h1>home v1</h1>" {
		t.Errorf("after rollback: got %q, want v1", body)
	}
	history := s.mustCLI("deploys", "--site", "blog")
	for _, id := range []string{id1, id2} {
		if !strings.Contains(history, id) {
			t.Errorf("deploys list lacks %s:\n%s", id, history)
		}
	}
	_, deploysBefore := s.api("GET", "/v1/sites/blog/deploys", s.token(), "", nil)
	_, statusBefore := s.api("GET", "/v1/status", s.token(), "", nil)

	// Crash and restart: published content and history survive, and no
	// command is applied twice (the deploy records are exactly as before).
	s.kill(syscall.SIGKILL)
	s.start()
	if _, body := s.get("GET", "blog.localhost", "/"); body != "<h1>home v1</h1>" {
		t.Errorf("after restart: got %q, want v1 (the rolled-back deploy)", body)
	}
	_, deploysAfter := s.api("GET", "/v1/sites/blog/deploys", s.token(), "", nil)
	if a, b := mustJSON(t, deploysBefore), mustJSON(t, deploysAfter); a != b {
		t.Errorf("deploys changed across restart:\nbefore %s\nafter  %s", a, b)
	}
	_, statusAfter := s.api("GET", "/v1/status", s.token(), "", nil)
	if b, a := statusBefore["applied_index"].(float64), statusAfter["applied_index"].(float64); a < b {
		t.Errorf("applied index went back across restart: %v -> %v", b, a)
	}
	if got := s.mustCLI("status"); !strings.Contains(got, "Leader") {
		t.Errorf("status after restart:\n%s\nwant the node as Leader", got)
	}

	// One-shot tar.gz upload with ?publish=true.
	var tgz bytes.Buffer
	gz := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(gz)
	for name, body := range map[string]string{"./index.html": "<h1>from tar</h1>", "./css/site.css": "body{}"} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	s.mustCLI("site", "create", "tarsite")
	status, body := s.api("POST", "/v1/sites/tarsite/deploys?publish=true", s.token(), "application/gzip", &tgz)
	if status != http.StatusCreated {
		t.Fatalf("tar upload: status %d %v, want 201", status, body)
	}
	if _, got := s.get("GET", "tarsite.localhost", "/"); got != "<h1>from tar</h1>" {
		t.Errorf("tar site: got %q", got)
	}

	// Bad input through the real API: clear errors, server keeps serving.
	bad := []struct {
		name, method, path, token, ctype, body string
		want                                   int
	}{
		{"no token", "GET", "/v1/sites", "", "", "", 401},
		{"wrong token", "GET", "/v1/sites", "wrong", "", "", 401},
		{"unknown site", "GET", "/v1/sites/ghost", s.token(), "", "", 404},
		{"malformed json", "POST", "/v1/sites", s.token(), "application/json", "{", 400},
		{"traversal in manifest", "POST", "/v1/sites/blog/deploys", s.token(), "application/json",
			`{"files":{"/../etc/passwd":"` + strings.Repeat("a", 64) + `"}}`, 400},
		{"hash mismatch", "PUT", "/v1/blobs/" + strings.Repeat("a", 64), s.token(), "", "hello", 400},
		{"unknown deploy", "POST", "/v1/deploys/zzzz/publish", s.token(), "", "", 404},
	}
	for _, tc := range bad {
		status, body := s.api(tc.method, tc.path, tc.token, tc.ctype, strings.NewReader(tc.body))
		if status != tc.want || body["error"] == nil {
			t.Errorf("%s: got %d %v, want %d with an error message", tc.name, status, body, tc.want)
		}
	}
	s.failCLI("site", "list", "--token", "wrong")
	if _, body := s.get("GET", "blog.localhost", "/"); body != "<h1>home v1</h1>" {
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
