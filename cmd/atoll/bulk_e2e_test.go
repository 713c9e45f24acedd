package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll/atolltest"
)

// TestEndToEndBulkSites builds sites through POST /v1/bulk/sites on the
// real binary: each is served at once; a request naming an existing site,
// or a blob not stored, is refused whole, leaving its other sites
// uncreated; a deploy token may not call it.
func TestEndToEndBulkSites(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.Start()
	admin := s.Token()
	pages := map[string]string{}
	for _, c := range []string{"<h1>one</h1>", "<h1>two</h1>"} {
		h := atolltest.SHA256Hex(c)
		if code, body := s.API("PUT", "/v1/blobs/"+h, admin, "", strings.NewReader(c)); code != 201 {
			t.Fatalf("PUT blob: %d %v", code, body)
		}
		pages[c] = h
	}
	one, two := pages["<h1>one</h1>"], pages["<h1>two</h1>"]
	body := fmt.Sprintf(`{"sites":[{"name":"bulk-a","files":{"/index.html":%q}},{"name":"bulk-b","files":{"/index.html":%q,"/x/two.html":%q}}]}`, one, two, two)
	code, resp := s.API("POST", "/v1/bulk/sites", admin, "application/json", strings.NewReader(body))
	if code != 201 {
		t.Fatalf("POST /v1/bulk/sites: %d %v", code, resp)
	}
	if deploys, _ := resp["deploys"].([]any); len(deploys) != 2 {
		t.Errorf("answer %v, want the deploys of both sites", resp)
	}
	for host, want := range map[string]string{"bulk-a.localhost/": "<h1>one</h1>", "bulk-b.localhost/": "<h1>two</h1>", "bulk-b.localhost/x/two.html": "<h1>two</h1>"} {
		h, p, _ := strings.Cut(host, "/")
		if r, got := s.Get("GET", h, "/"+p); r.StatusCode != 200 || got != want {
			t.Errorf("GET %s: %d %q, want 200 %q", host, r.StatusCode, got, want)
		}
	}

	for _, tc := range []struct {
		name, body string
		code       int
		says       string
	}{
		{"existing site", fmt.Sprintf(`{"sites":[{"name":"bulk-c","files":{"/index.html":%q}},{"name":"bulk-a","files":{"/index.html":%q}}]}`, one, one), 409, "already exists"},
		{"blob not stored", fmt.Sprintf(`{"sites":[{"name":"bulk-c","files":{"/index.html":%q}}]}`, atolltest.SHA256Hex("never uploaded")), 409, "not stored"},
		{"bad path", fmt.Sprintf(`{"sites":[{"name":"bulk-c","files":{"/../x":%q}}]}`, one), 400, "invalid file"},
		{"no sites", `{"sites":[]}`, 400, "1 to 1000 sites"},
	} {
		code, resp := s.API("POST", "/v1/bulk/sites", admin, "application/json", strings.NewReader(tc.body))
		if msg, _ := resp["error"].(string); code != tc.code || !strings.Contains(msg, tc.says) {
			t.Errorf("%s: %d %v, want %d saying %q", tc.name, code, resp, tc.code, tc.says)
		}
	}
	if code, _ := s.API("GET", "/v1/sites/bulk-c", admin, "", nil); code != 404 {
		t.Errorf("a refused bulk request created site bulk-c: GET answered %d", code)
	}

	token := strings.TrimSpace(s.MustCLI("token", "create", "--site", "bulk-a"))
	if code, _ := s.API("POST", "/v1/bulk/sites", token, "application/json", strings.NewReader(body)); code != 403 && code != 401 {
		t.Errorf("a deploy token called POST /v1/bulk/sites: %d, want 403", code)
	}
}
