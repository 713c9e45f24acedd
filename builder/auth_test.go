package builder_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/builder/buildertest"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newToken creates a deploy token through the API with the admin token.
func newToken(t *testing.T, srv *buildertest.Server, site, name string) atoll.CreatedToken {
	t.Helper()
	var tok atoll.CreatedToken
	call(t, srv, request{method: "POST", path: "/v1/tokens", body: jsonBody(t, atoll.CreateTokenRequest{Site: site, Name: name})}, http.StatusCreated, &tok)
	return tok
}

// TestDeployToken walks a deploy token through everything it may do on its
// site, then checks that every other call is refused without a change, and
// that revoking it (or deleting its site) locks it out.
func TestDeployToken(t *testing.T) {
	logs := &syncBuffer{}
	srv := buildertest.NewServer(t, builder.Config{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	createSite(t, srv, "demo")
	createSite(t, srv, "other")

	tok := newToken(t, srv, "demo", "ci")
	if !atoll.ValidTokenID(tok.ID) || tok.Site != "demo" || tok.Name != "ci" || tok.Created.IsZero() {
		t.Errorf("created token = %+v", tok.TokenInfo)
	}
	if !strings.HasPrefix(tok.Token, atoll.SiteTokenPrefix) || len(tok.Token) != len(atoll.SiteTokenPrefix)+64 {
		t.Errorf("secret %q: want %s and 64 hex digits", tok.Token, atoll.SiteTokenPrefix)
	}
	if tok.Token == newToken(t, srv, "demo", "").Token {
		t.Error("two tokens got the same secret")
	}
	stored, err := srv.Meta.TokenByHash(sha(tok.Token))
	if err != nil || stored.ID != tok.ID {
		t.Fatalf("the cluster does not know the token by its hash: %+v, %v", stored, err)
	}
	as := func(method, path, ctype string, body []byte) request {
		return request{method: method, path: path, token: tok.Token, contentType: ctype, body: body}
	}

	// Another site's deploy, made by the admin.
	var otherDeploy atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/other/deploys", body: manifest(map[string]string{"/o.html": sha("o")})}, 201, &otherDeploy)

	t.Run("allowed on its site", func(t *testing.T) {
		var d atoll.DeployResponse
		call(t, srv, as("POST", "/v1/sites/demo/deploys", "", manifest(map[string]string{"/index.html": sha("hi")})), 201, &d)
		call(t, srv, as("PUT", "/v1/blobs/"+sha("hi"), "application/octet-stream", []byte("hi")), 201, nil)
		call(t, srv, as("POST", "/v1/deploys/"+d.ID+"/finalize", "", nil), 200, nil)
		call(t, srv, as("POST", "/v1/deploys/"+d.ID+"/publish", "", nil), 200, nil)
		call(t, srv, as("GET", "/v1/deploys/"+d.ID, "", nil), 200, &d)
		if d.State != atoll.StatePublished || d.Site != "demo" {
			t.Errorf("deploy = %+v, want published on demo", d.Deploy)
		}
		var list atoll.DeployList
		call(t, srv, as("GET", "/v1/sites/demo/deploys", "", nil), 200, &list)
		if len(list.Deploys) != 1 {
			t.Errorf("deploys of demo = %d, want 1", len(list.Deploys))
		}
		var site atoll.Site
		call(t, srv, as("GET", "/v1/sites/demo", "", nil), 200, &site)
		if site.Published != d.ID {
			t.Errorf("site = %+v, want %s live", site, d.ID)
		}
		call(t, srv, as("POST", "/v1/sites/demo/deploys?publish=true", "application/x-tar",
			makeTar(t, false, member{name: "index.html", body: "from tar"})), 201, nil)
		// Rollback is a publish of an older deploy of its own site.
		call(t, srv, as("POST", "/v1/deploys/"+d.ID+"/publish?rollback=true", "", nil), 200, nil)
	})

	t.Run("refused elsewhere", func(t *testing.T) {
		od := "/v1/deploys/" + otherDeploy.ID
		for _, req := range []request{
			as("POST", "/v1/sites", "", []byte(`{"name":"mine"}`)),
			as("GET", "/v1/sites", "", nil),
			as("GET", "/v1/sites/other", "", nil),
			as("GET", "/v1/sites/nosuch", "", nil),
			as("PATCH", "/v1/sites/demo", "", []byte(`{"retain":3}`)),
			as("DELETE", "/v1/sites/demo", "", nil),
			as("POST", "/v1/sites/other/deploys", "", manifest(map[string]string{"/x": sha("x")})),
			as("POST", "/v1/sites/other/deploys?publish=true", "application/x-tar", makeTar(t, false, member{name: "x", body: "x"})),
			as("GET", "/v1/sites/other/deploys", "", nil),
			as("GET", od, "", nil),
			as("POST", od+"/finalize", "", nil),
			as("POST", od+"/publish", "", nil),
			as("POST", "/v1/tokens", "", jsonBody(t, atoll.CreateTokenRequest{Site: "demo"})),
			as("GET", "/v1/tokens", "", nil),
			as("DELETE", "/v1/tokens/"+tok.ID, "", nil),
		} {
			t.Run(req.method+" "+req.path, func(t *testing.T) {
				before, applied := srv.Meta.State(t), srv.Meta.AppliedIndex()
				res := do(t, srv, req)
				if res.status != http.StatusForbidden {
					t.Fatalf("got %d %s, want 403", res.status, res.body)
				}
				if got, want := res.errorBody(t).Error, "this token is scoped to site demo"; got != want {
					t.Errorf("error %q, want %q", got, want)
				}
				if n := srv.Meta.AppliedIndex(); n != applied || srv.Meta.State(t) != before {
					t.Errorf("a refused request applied %d commands", n-applied)
				}
			})
		}
	})

	t.Run("node routes behind RequireAuth", func(t *testing.T) {
		mux := http.NewServeMux()
		srv.API.Register(mux)
		mux.Handle("GET /v1/status", srv.API.RequireAuth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := builder.CallerFrom(r.Context())
			builder.WriteJSON(w, 200, map[string]any{"admin": c.Admin, "ok": ok})
		})))
		node := &buildertest.Server{Server: httptest.NewServer(mux), API: srv.API, Meta: srv.Meta, Blobs: srv.Blobs}
		defer node.Close()
		var got map[string]bool
		call(t, node, request{method: "GET", path: "/v1/status"}, 200, &got)
		if !got["admin"] || !got["ok"] {
			t.Errorf("admin caller seen as %v", got)
		}
		res := do(t, node, as("GET", "/v1/status", "", nil))
		if res.status != http.StatusForbidden || res.errorBody(t).Error != "this token is scoped to site demo" {
			t.Errorf("deploy token on an admin route: %d %s, want 403", res.status, res.body)
		}
		if res := do(t, node, request{method: "GET", path: "/v1/status", token: "atl_site_" + strings.Repeat("0", 64)}); res.status != 401 {
			t.Errorf("unknown token on an admin route: %d, want 401", res.status)
		}
	})

	t.Run("listed without secrets", func(t *testing.T) {
		res := do(t, srv, request{method: "GET", path: "/v1/tokens"})
		if res.status != 200 {
			t.Fatalf("GET /v1/tokens: %d %s", res.status, res.body)
		}
		if bytes.Contains(res.body, []byte(tok.Token)) || bytes.Contains(res.body, []byte(sha(tok.Token))) {
			t.Errorf("token list shows a secret or its hash: %s", res.body)
		}
		var list atoll.TokenList
		if err := json.Unmarshal(res.body, &list); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ti := range list.Tokens {
			found = found || ti == tok.TokenInfo
		}
		if len(list.Tokens) != 2 || !found {
			t.Errorf("tokens = %+v, want 2 with %+v", list.Tokens, tok.TokenInfo)
		}
	})

	t.Run("revoked", func(t *testing.T) {
		res := do(t, srv, request{method: "DELETE", path: "/v1/tokens/" + tok.ID})
		if res.status != http.StatusNoContent || len(res.body) != 0 {
			t.Fatalf("revoke: %d %q, want 204", res.status, res.body)
		}
		res = do(t, srv, as("GET", "/v1/sites/demo", "", nil))
		if res.status != http.StatusUnauthorized || !strings.Contains(res.errorBody(t).Error, "invalid token") {
			t.Errorf("revoked token: %d %s, want 401", res.status, res.body)
		}
		call(t, srv, request{method: "DELETE", path: "/v1/tokens/" + tok.ID}, 404, nil)
	})

	t.Run("site deleted", func(t *testing.T) {
		ot := newToken(t, srv, "other", "")
		call(t, srv, request{method: "GET", path: "/v1/sites/other", token: ot.Token}, 200, nil)
		call(t, srv, request{method: "DELETE", path: "/v1/sites/other"}, 204, nil)
		call(t, srv, request{method: "GET", path: "/v1/sites/other", token: ot.Token}, 401, nil)
		// A new site of the same name does not revive it.
		createSite(t, srv, "other")
		call(t, srv, request{method: "GET", path: "/v1/sites/other", token: ot.Token}, 401, nil)
	})

	if l := logs.String(); strings.Contains(l, tok.Token) || strings.Contains(l, atoll.SiteTokenPrefix) {
		t.Errorf("a token reached the log:\n%s", l)
	}
	if l := logs.String(); !strings.Contains(l, tok.ID) {
		t.Errorf("the log does not record the token's creation by id:\n%s", l)
	}
}

func TestTokenRequestsRejected(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	createSite(t, srv, "demo")
	tests := []struct {
		name, method, path, body string
		status                   int
		errContains              string
	}{
		{"no site", "POST", "/v1/tokens", `{"name":"ci"}`, 400, "site"},
		{"unknown site", "POST", "/v1/tokens", `{"site":"nosuch"}`, 404, "nosuch"},
		{"long name", "POST", "/v1/tokens", `{"site":"demo","name":"` + strings.Repeat("n", atoll.MaxTokenNameLen+1) + `"}`, 400, "name"},
		{"control character in name", "POST", "/v1/tokens", `{"site":"demo","name":"a\u001bb"}`, 400, "control"},
		{"unknown field", "POST", "/v1/tokens", `{"site":"demo","scope":"all"}`, 400, "scope"},
		{"malformed", "POST", "/v1/tokens", `{"site":`, 400, "malformed"},
		{"revoke unknown", "DELETE", "/v1/tokens/nosuch", "", 404, "nosuch"},
		{"revoke invalid id", "DELETE", "/v1/tokens/NOPE", "", 404, "NOPE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.Meta.State(t)
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			res := do(t, srv, request{method: tc.method, path: tc.path, body: body})
			if res.status != tc.status {
				t.Fatalf("got %d %s, want %d", res.status, res.body, tc.status)
			}
			if e := res.errorBody(t).Error; !strings.Contains(e, tc.errContains) {
				t.Errorf("error %q does not mention %q", e, tc.errContains)
			}
			if srv.Meta.State(t) != before {
				t.Error("a rejected request changed the state")
			}
		})
	}
	// Without any token, the token routes answer 401 like the others.
	if res := do(t, srv, request{method: "GET", path: "/v1/tokens", token: "-"}); res.status != 401 {
		t.Errorf("GET /v1/tokens without a token: %d, want 401", res.status)
	}
}
