package node_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll/node/nodetest"
)

// The runtime profiles are for operators: the admin token opens them, no
// token or a deploy token does not.
func TestPprofNeedsAdminToken(t *testing.T) {
	c := nodetest.New(t, 1, 0)
	base := "http://" + c.Members[0].Cfg.APIAddr
	get := func(path, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest("GET", base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/debug/pprof/", ""); code != http.StatusUnauthorized || !strings.Contains(body, `"error"`) {
		t.Errorf("no token: %d %q, want 401 with a JSON error", code, body)
	}
	if code, _ := get("/debug/pprof/heap?debug=1", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", code)
	}
	code, body := get("/debug/pprof/heap?debug=1", nodetest.Token)
	if code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("admin token: %d %.80q, want 200 with the heap profile", code, body)
	}
}
