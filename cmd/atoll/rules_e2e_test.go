package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
)

// rulesSite is a site with _redirects and _headers that exercise every rule
// kind; the first lines are Netlify's documented examples.
func rulesSite(version string) map[string]string {
	return map[string]string{
		"index.html":       "<h1>home</h1>",
		"about.html":       "<h1>about</h1>",
		"404.html":         "<h1>custom not found</h1>",
		"gone.html":        "<h1>gone for good</h1>",
		"app/index.html":   "<h1>spa shell</h1>",
		"assets/app.css":   "body{color:red}",
		"private/doc.html": "<h1>secret doc</h1>",
		"marker":           version,
		"_redirects": `# Netlify's examples
/news/:year/:month/:date/:slug  /blog/:year/:month/:date/:slug
/store id=:id  /blog/:id  301
/shop/*  /store/:splat  302
/blog/*  /news/:splat  301
/index.html  /shadowed  301
/about.html  /forced  301!
/removed  /gone.html  410
/app/*  /app/index.html  200
/cuties  https://www.petsofnetlify.com
/proxy  https://example.com/api  200
/version  /v` + version + `  302
`,
		"_headers": `/*
  X-Frame-Options: DENY
  X-Version: ` + version + `
/assets/*
  Cache-Control: public, max-age=31536000, immutable
/private/*
  Basic-Auth: alice:s3cret bob:hunter2
/index.html
  ! X-Frame-Options
`,
	}
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestRulesEndToEnd(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.Start()
	waitFeatureLevel(t, s, atoll.LevelFeatureLevels)
	s.MustCLI("site", "create", "blog")
	dir := t.TempDir()
	writeTree(t, dir, rulesSite("1"))
	out, errOut, code := s.CLI("deploy", dir, "--site", "blog", "--message", "first cut, with rules")
	if code != 0 {
		t.Fatalf("deploy: exit %d\n%s%s", code, out, errOut)
	}
	id1 := deployID(t, out)
	if !strings.Contains(errOut, "warning: _redirects:11: ") || !strings.Contains(errOut, "never proxies") {
		t.Errorf("deploy stderr %q: want the skipped proxy line reported as _redirects:11", errOut)
	}

	resp, _ := s.Get("GET", "blog.localhost", "/assets/app.css")
	etag := resp.Header.Get("ETag")
	cases := []struct {
		name       string
		path       string
		hdr        []string
		wantStatus int
		wantBody   string
		wantHeader map[string]string
	}{
		{name: "placeholders", path: "/news/2024/02/12/my-story", wantStatus: 301,
			wantHeader: map[string]string{"Location": "/blog/2024/02/12/my-story"}},
		{name: "query match", path: "/store?id=42", wantStatus: 301, wantHeader: map[string]string{"Location": "/blog/42?id=42"}},
		{name: "query match required", path: "/store", wantStatus: 404, wantBody: "<h1>custom not found</h1>"},
		{name: "splat keeps query", path: "/shop/shirts/red?color=1&size=m", wantStatus: 302,
			wantHeader: map[string]string{"Location": "/store/shirts/red?color=1&size=m"}},
		{name: "splat 301", path: "/blog/2020/post", wantStatus: 301, wantHeader: map[string]string{"Location": "/news/2020/post"}},
		{name: "shadowed by the file", path: "/index.html", wantStatus: 200, wantBody: "<h1>home</h1>"},
		{name: "forced over the file", path: "/about.html", wantStatus: 301, wantHeader: map[string]string{"Location": "/forced"}},
		{name: "clean url still a file", path: "/about", wantStatus: 200, wantBody: "<h1>about</h1>"},
		{name: "410 serves the target", path: "/removed", wantStatus: 410, wantBody: "<h1>gone for good</h1>",
			wantHeader: map[string]string{"Cache-Control": "no-cache", "ETag": ""}},
		{name: "spa fallback", path: "/app/settings/profile", wantStatus: 200, wantBody: "<h1>spa shell</h1>",
			wantHeader: map[string]string{"Content-Type": "text/html; charset=utf-8"}},
		{name: "spa asset shadows", path: "/app/", wantStatus: 200, wantBody: "<h1>spa shell</h1>"},
		{name: "absolute redirect", path: "/cuties", wantStatus: 301, wantHeader: map[string]string{"Location": "https://www.petsofnetlify.com"}},
		{name: "no proxying", path: "/proxy", wantStatus: 404},
		{name: "_redirects not served", path: "/_redirects", wantStatus: 404, wantBody: "<h1>custom not found</h1>"},
		{name: "_headers not served", path: "/_headers", wantStatus: 404},
		{name: "headers on 200", path: "/about", wantStatus: 200,
			wantHeader: map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "public, max-age=0, must-revalidate"}},
		{name: "header removed", path: "/index.html", wantStatus: 200, wantHeader: map[string]string{"X-Frame-Options": "", "X-Version": "1"}},
		{name: "headers on 404", path: "/nope", wantStatus: 404,
			wantHeader: map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-cache"}},
		{name: "cache-control replaces default", path: "/assets/app.css", wantStatus: 200,
			wantHeader: map[string]string{"Cache-Control": "public, max-age=31536000, immutable", "X-Frame-Options": "DENY"}},
		{name: "cache-control on 304", path: "/assets/app.css", hdr: []string{"If-None-Match", etag}, wantStatus: 304,
			wantHeader: map[string]string{"Cache-Control": "public, max-age=31536000, immutable"}},
		{name: "basic auth required", path: "/private/doc.html", wantStatus: 401,
			wantHeader: map[string]string{"WWW-Authenticate": `Basic realm="Restricted", charset="UTF-8"`}},
		{name: "basic auth wrong password", path: "/private/doc.html", hdr: []string{"Authorization", basic("alice", "hunter2")}, wantStatus: 401},
		{name: "basic auth", path: "/private/doc.html", hdr: []string{"Authorization", basic("alice", "s3cret")}, wantStatus: 200,
			wantBody: "<h1>secret doc</h1>", wantHeader: map[string]string{"Cache-Control": "private, max-age=0, must-revalidate"}},
		{name: "basic auth again (cached)", path: "/private/doc.html", hdr: []string{"Authorization", basic("alice", "s3cret")}, wantStatus: 200},
		{name: "basic auth second user", path: "/private/doc.html", hdr: []string{"Authorization", basic("bob", "hunter2")}, wantStatus: 200},
		{name: "preview has its rules", path: "/version", wantStatus: 302, wantHeader: map[string]string{"Location": "/v1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := s.Get("GET", "blog.localhost", tc.path, tc.hdr...)
			checkAnswer(t, resp, body, tc.wantStatus, tc.wantBody, tc.wantHeader)
		})
	}

	deploysBefore := s.MustCLI("deploys", "--site", "blog")
	if !strings.Contains(deploysBefore, "first cut, with rules") {
		t.Errorf("atoll deploys does not show the message:\n%s", deploysBefore)
	}
	// --dry-run says what would be uploaded and records nothing.
	writeTree(t, dir, map[string]string{"extra.txt": "a new file"})
	out = s.MustCLI("deploy", dir, "--site", "blog", "--dry-run")
	if !strings.Contains(out, "1 to upload") || !strings.Contains(out, "upload /extra.txt") {
		t.Errorf("deploy --dry-run:\n%s\nwant /extra.txt alone to upload", out)
	}
	if after := s.MustCLI("deploys", "--site", "blog"); after != deploysBefore {
		t.Errorf("a dry run recorded a deploy:\n%s", after)
	}

	// atoll route shows what the edge does, without a request.
	out = s.MustCLI("route", "--site", "blog", "/shop/shirts/red?color=1")
	for _, want := range []string{"rule:    _redirects:4: /shop/* /store/:splat 302", "target:  /store/shirts/red", "status:  302 Found", "header:  X-Frame-Options: DENY"} {
		if !strings.Contains(out, want) {
			t.Errorf("atoll route output lacks %q:\n%s", want, out)
		}
	}
	out = s.MustCLI("route", "--site", "blog", "--deploy", id1, "/private/doc.html")
	if !strings.Contains(out, "file:    /private/doc.html") || !strings.Contains(out, "Basic-Auth required") || !strings.Contains(out, "status:  200 OK") {
		t.Errorf("atoll route of a protected file:\n%s", out)
	}
	if errOut := s.FailCLI("route", "--site", "blog", "no-slash"); !strings.Contains(errOut, "path=") {
		t.Errorf("atoll route with a bad path: %q", errOut)
	}

	// A refused _headers fails the upload with the line, and records no deploy.
	before := s.MustCLI("deploys", "--site", "blog")
	tarball := atolltest.Tar(map[string]string{"index.html": "x", "_headers": "/*\n  X-Ok: 1\n  Content-Length: 5\n"})
	status, body := s.API("POST", "/v1/sites/blog/deploys", s.Token(), "application/x-tar", bytes.NewReader(tarball))
	if msg, _ := body["error"].(string); status != http.StatusBadRequest || !strings.Contains(msg, "_headers:3") || !strings.Contains(msg, "Content-Length") {
		t.Errorf("forbidden header: got %d %v, want 400 naming _headers:3 and Content-Length", status, body)
	}
	if after := s.MustCLI("deploys", "--site", "blog"); after != before {
		t.Errorf("a refused upload left a deploy:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Files and rules switch together on publish and rollback: every answer
	// for /marker has the body and X-Version of one deploy.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Value
	var seen [3]atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			resp, body, err := s.Fetch(t.Context(), "GET", "blog.localhost", "/marker")
			if err != nil {
				bad.Store(err.Error())
				return
			}
			v := resp.Header.Get("X-Version")
			if resp.StatusCode != 200 || string(body) != v || (v != "1" && v != "2") {
				bad.Store(fmt.Sprintf("status %d, body %q, X-Version %q", resp.StatusCode, body, v))
				return
			}
			seen[v[0]-'0'].Add(1)
		}
	}()
	dir2 := t.TempDir()
	writeTree(t, dir2, rulesSite("2"))
	var d2 atoll.DeployResponse
	if err := json.Unmarshal([]byte(s.MustCLI("deploy", dir2, "--site", "blog", "-o", "json")), &d2); err != nil || d2.Rules == "" {
		t.Fatalf("deploy -o json: %+v, %v; want a deploy with rules", d2, err)
	}
	id2 := d2.ID
	if resp, _ := s.Get("GET", "blog.localhost", "/version"); resp.Header.Get("Location") != "/v2" {
		t.Errorf("after publish: /version -> %q, want /v2", resp.Header.Get("Location"))
	}
	if resp, _ := s.Get("GET", id1+"--blog.localhost", "/version"); resp.Header.Get("Location") != "/v1" {
		t.Errorf("preview of the old deploy: /version -> %q, want /v1", resp.Header.Get("Location"))
	}
	s.MustCLI("rollback", "--site", "blog", id1)
	if resp, _ := s.Get("GET", "blog.localhost", "/version"); resp.Header.Get("Location") != "/v1" {
		t.Errorf("after rollback: /version -> %q, want /v1", resp.Header.Get("Location"))
	}
	s.MustCLI("rollback", "--site", "blog", id2)

	// A locked site keeps its live deploy; previews still work.
	s.MustCLI("site", "lock", "blog")
	if errOut := s.FailCLI("rollback", "--site", "blog", id1); !strings.Contains(errOut, "locked") || !strings.Contains(errOut, "atoll site unlock blog") {
		t.Errorf("rollback of a locked site: %q", errOut)
	}
	if resp, _ := s.Get("GET", id1+"--blog.localhost", "/version"); resp.Header.Get("Location") != "/v1" {
		t.Errorf("preview of a locked site: /version -> %q, want /v1", resp.Header.Get("Location"))
	}
	s.MustCLI("site", "unlock", "blog")
	stop.Store(true)
	wg.Wait()
	if b := bad.Load(); b != nil {
		t.Fatalf("a reader saw a mixed answer: %v", b)
	}
	var list atoll.DeployList
	if err := json.Unmarshal([]byte(s.MustCLI("deploys", "--site", "blog", "-o", "json")), &list); err != nil || len(list.Deploys) != 2 {
		t.Errorf("deploys -o json: %+v, %v; want 2 deploys", list, err)
	}
	var sites atoll.SiteList
	if err := json.Unmarshal([]byte(s.MustCLI("site", "list", "-o", "json")), &sites); err != nil || len(sites.Sites) != 1 || sites.Sites[0].Published != id2 {
		t.Errorf("site list -o json: %+v, %v; want blog live at %s", sites, err, id2)
	}
	var st struct {
		ID       string   `json:"id"`
		Problems []string `json:"problems"`
	}
	if err := json.Unmarshal([]byte(s.MustCLI("status", "-o", "json")), &st); err != nil || st.ID == "" || st.Problems == nil {
		t.Errorf("status -o json: %+v, %v", st, err)
	}
	if seen[1].Load() == 0 || seen[2].Load() == 0 {
		t.Logf("the reader saw v1 %d times and v2 %d times", seen[1].Load(), seen[2].Load())
	}
}
