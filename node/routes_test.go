package node_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/node/nodetest"
	"github.com/atoll-hosting/atoll/peer"
)

// Every route of the API listener is behind its scope's guard: the test
// walks the node's route table and knocks on each route, over real HTTP,
// with the credentials its scope must refuse. Nothing gets past a guard,
// so no handler runs (no profile is taken, no node removed).
func TestEveryRouteIsGuarded(t *testing.T) {
	c := nodetest.New(t, 1, 0)
	m := c.Members[0]
	ctx := context.Background()
	cl := c.Client(m)
	for _, s := range []string{"mine", "other"} {
		if _, err := cl.CreateSite(ctx, s, nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := cl.CreateToken(ctx, "mine", "ci")
	if err != nil {
		t.Fatal(err)
	}
	deployToken := "Bearer " + tok.Token

	type knock struct {
		name, header, value string
		want                int // 0: anything but 401 and 403
	}
	var (
		none       = knock{"no credentials", "", "", http.StatusUnauthorized}
		badToken   = knock{"unknown token", "Authorization", "Bearer nope", http.StatusUnauthorized}
		deployTok  = knock{"deploy token", "Authorization", deployToken, http.StatusForbidden}
		adminToken = knock{"admin token", "Authorization", "Bearer " + nodetest.Token, http.StatusForbidden}
		wrongKey   = knock{"wrong cluster key", peer.HeaderClusterKey, "nope", http.StatusForbidden}
	)
	knocks := map[builder.Scope][]knock{
		builder.Public: {{"no credentials", "", "", 0}},
		builder.Admin:  {none, badToken, deployTok},
		builder.Site:   {none, badToken, deployTok}, // the path's {site} is not the token's
		builder.Token:  {none, badToken},
		builder.Peer: {
			{"no credentials", "", "", http.StatusForbidden}, wrongKey, adminToken,
			{"deploy token", "Authorization", deployToken, http.StatusForbidden},
		},
		builder.AdminOrPeer: {none, deployTok, {"wrong cluster key", peer.HeaderClusterKey, "nope", http.StatusUnauthorized}},
	}

	fill := strings.NewReplacer("{hash}", sha("x"), "{site}", "other", "{id}", "nobody", "{domain}", "www.example.com")
	base := m.Node.APIURL()
	seen := map[builder.Scope]int{}
	routes := m.Node.Routes()
	for _, r := range routes {
		method, path := r.Method, fill.Replace(r.Pattern)
		if method == "" {
			method, path = http.MethodGet, "/no/such/endpoint"
		}
		ks, ok := knocks[r.Scope]
		if !ok {
			t.Errorf("%s %s: scope %v has no guard this test knows", r.Method, r.Pattern, r.Scope)
			continue
		}
		seen[r.Scope]++
		for _, k := range ks {
			t.Run(method+" "+r.Pattern+"/"+r.Scope.String()+"/"+k.name, func(t *testing.T) {
				got := knockOn(t, method, base+path, k.header, k.value)
				switch {
				case k.want == 0 && (got == http.StatusUnauthorized || got == http.StatusForbidden):
					t.Errorf("got %d, want the public route open", got)
				case k.want != 0 && got != k.want:
					t.Errorf("got %d, want %d", got, k.want)
				}
			})
		}
	}
	for s := range knocks {
		if seen[s] == 0 {
			t.Errorf("no route of scope %v in the table of %d routes", s, len(routes))
		}
	}
}

// knockOn sends one request with an optional header and returns the status.
func knockOn(t *testing.T, method, url, header, value string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if header != "" {
		req.Header.Set(header, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// The table holds the endpoints builders, operators, peers and probes call,
// and a node joining by itself may use the cluster key.
func TestRouteTableNamesTheWholeAPI(t *testing.T) {
	c := nodetest.New(t, 1, 0)
	want := []string{
		"POST /v1/sites", "GET /v1/status", "POST /v1/nodes", "PUT /v1/peer/blobs/{hash}",
		"POST /v1/peer/apply", "GET /v1/peer/scrub", "POST /v1/peer/verify", "GET /debug/pprof/",
		"GET /healthz", "GET /readyz", "GET /metrics", "POST /v1/snapshot/restore",
	}
	got := map[string]builder.Scope{}
	for _, r := range c.Members[0].Node.Routes() {
		got[r.Method+" "+r.Pattern] = r.Scope
	}
	for _, w := range want {
		if _, ok := got[w]; !ok {
			t.Errorf("the route table lacks %s", w)
		}
	}
	if got, want := got["POST /v1/nodes"], builder.AdminOrPeer; got != want {
		t.Errorf("POST /v1/nodes is %v, want %v: a node joins with the cluster key", got, want)
	}
}
