package serve

import (
	"encoding/base64"
	"testing"

	"github.com/valyala/fasthttp"
)

// serveOnce answers one request to h and returns the response.
func serveOnce(h *Handler, method, host, uri string, hdr ...string) *fasthttp.Response {
	ctx := serveCtx(h, method, host, uri, hdr...)
	var resp fasthttp.Response
	ctx.Response.CopyTo(&resp)
	if s := ctx.Response.BodyStream(); s != nil {
		resp.SetBody(ctx.Response.Body())
	}
	ctx.Response.Reset()
	return &resp
}

const ruleHost = "rules." + testDomain

func TestRulesAnswers(t *testing.T) {
	e := newRealEdge(t)
	publishRules(t, e, "rules", "dep2",
		"/store id=:id /items/:id 301\n/app/* /page.html 200\n/missing/* /nope.html 200\n/open/* /x 302\n",
		"/open/*\n  X-A: 1\n/locked/*\n  Basic-Auth: alice:pw1\n/other/*\n  Basic-Auth: bob:pw2\n")
	tests := []struct {
		name, method, uri string
		hdr               []string
		status            int
		header            string
		want              string
	}{
		// Rules matching query parameters are evaluated per request, not
		// cached per path.
		{"query 1", "GET", "/store?id=1", nil, 301, "Location", "/items/1?id=1"},
		{"query 2", "GET", "/store?id=2", nil, 301, "Location", "/items/2?id=2"},
		{"query absent", "GET", "/store", nil, 404, "", ""},
		{"rewrite head", "HEAD", "/app/x", nil, 200, "Content-Type", "text/html; charset=utf-8"},
		{"rewrite range", "GET", "/app/x", []string{"Range", "bytes=0-9"}, 206, "Content-Range", "bytes 0-9/30720"},
		{"rewrite to a missing file", "GET", "/missing/x", nil, 404, "Cache-Control", "no-cache"},
		{"header on a redirect", "GET", "/open/y", nil, 302, "X-A", "1"},
		{"auth", "GET", "/locked/1k.bin", []string{"Authorization", basicAuth("alice", "pw1")}, 404, "", ""},
		{"cached credentials do not open another block", "GET", "/other/1k.bin", []string{"Authorization", basicAuth("alice", "pw1")}, 401, "Www-Authenticate", `Basic realm="Restricted", charset="UTF-8"`},
		{"other user", "GET", "/other/1k.bin", []string{"Authorization", basicAuth("bob", "pw2")}, 404, "", ""},
		{"rules are served plain on a site without rules", "GET", "/1k.bin", nil, 200, "X-A", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := ruleHost
			if tt.name == "rules are served plain on a site without rules" {
				host = "bench." + testDomain
			}
			resp := serveOnce(e.h, tt.method, host, tt.uri, tt.hdr...)
			if resp.StatusCode() != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode(), tt.status)
			}
			if tt.header != "" {
				if got := string(resp.Header.Peek(tt.header)); got != tt.want {
					t.Errorf("%s: %q, want %q", tt.header, got, tt.want)
				}
			}
		})
	}
}

// A deploy with rules is not served by a handler that cannot read them:
// serving it plain would drop its Basic-Auth.
func TestRulesNeedRuleSource(t *testing.T) {
	e := newRealEdge(t)
	publishRules(t, e, "rules", "dep2", "", "/*\n  Basic-Auth: a:b\n")
	h, err := New(Config{Domain: testDomain}, struct{ Catalog }{e.fsm}, storeBlobs{e.blobs})
	if err != nil {
		t.Fatal(err)
	}
	if resp := serveOnce(h, "GET", ruleHost, "/1k.bin"); resp.StatusCode() != 500 {
		t.Errorf("status %d, want 500", resp.StatusCode())
	}
	if resp := serveOnce(h, "GET", "bench."+testDomain, "/1k.bin"); resp.StatusCode() != 200 {
		t.Errorf("site without rules: status %d, want 200", resp.StatusCode())
	}
}

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}
