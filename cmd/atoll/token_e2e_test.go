package main

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// waitAdmin waits until the admin token works: /readyz may answer before a
// bootstrapping node has written its token file and recorded its hash.
func waitAdmin(t *testing.T, s *atolltest.Server) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if token, err := s.ReadToken(); err == nil {
			if status, _, err := s.Node.API(t.Context(), "GET", "/v1/status", token, "", nil); err == nil && status == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the admin token does not work 15s after start:\n%s", s.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// failAs runs a command with token that must fail with one line on stderr
// containing want.
func failAs(t *testing.T, s *atolltest.Server, token, want string, args ...string) {
	t.Helper()
	if errOut := s.FailAs(token, args...); !strings.Contains(errOut, want) {
		t.Errorf("atoll %s: stderr %q, want one line with %q", strings.Join(args, " "), errOut, want)
	}
}

// TestEndToEndDeployToken creates a site-scoped deploy token with the CLI,
// deploys and rolls back with it, checks that it can do nothing else, and
// revokes it.
func TestEndToEndDeployToken(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.Start()
	waitAdmin(t, s)
	s.MustCLI("site", "create", "blog")
	s.MustCLI("site", "create", "shop")
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"index.html": "<h1>by token</h1>"})

	out, errOut, code := s.CLI("token", "create", "--site", "blog", "--name", "ci")
	if code != 0 {
		t.Fatalf("token create: exit %d: %s", code, errOut)
	}
	secret := strings.TrimSpace(out)
	if !strings.HasPrefix(secret, "atl_site_") || strings.ContainsAny(secret, " \n") {
		t.Fatalf("token create printed %q on stdout, want the secret alone", out)
	}
	if !strings.Contains(errOut, "cannot be shown again") {
		t.Errorf("token create stderr %q lacks the note that the secret is shown once", errOut)
	}
	list := s.MustCLI("token", "list")
	if !strings.Contains(list, "blog") || !strings.Contains(list, "ci") || strings.Contains(list, secret) {
		t.Errorf("token list:\n%s\nwant the blog token named ci, without its secret", list)
	}
	id := strings.Fields(strings.Split(strings.TrimSpace(list), "\n")[1])[0]

	// What the token may do: deploy, list and roll back its own site.
	first := deployID(t, s.MustAs(secret, "deploy", dir, "--site", "blog"))
	if _, body := s.Get("GET", "blog.localhost", "/"); body != "<h1>by token</h1>" {
		t.Errorf("site deployed with the token serves %q", body)
	}
	writeTree(t, dir, map[string]string{"index.html": "<h1>v2</h1>"})
	s.MustAs(secret, "deploy", dir, "--site", "blog")
	if history := s.MustAs(secret, "deploys", "--site", "blog"); !strings.Contains(history, first) {
		t.Errorf("deploys with the token:\n%s\nwant %s", history, first)
	}
	s.MustAs(secret, "rollback", "--site", "blog", first)
	if _, body := s.Get("GET", "blog.localhost", "/"); body != "<h1>by token</h1>" {
		t.Errorf("after rollback with the token: %q", body)
	}

	// What it may not: 403 and one line naming its scope.
	const scoped = "this token is scoped to site blog"
	failAs(t, s, secret, scoped, "deploy", dir, "--site", "shop")
	failAs(t, s, secret, scoped, "deploys", "--site", "shop")
	failAs(t, s, secret, scoped, "site", "create", "mine")
	failAs(t, s, secret, scoped, "site", "list")
	failAs(t, s, secret, scoped, "site", "delete", "blog")
	failAs(t, s, secret, scoped, "token", "list")
	failAs(t, s, secret, scoped, "token", "create", "--site", "blog")
	failAs(t, s, secret, scoped, "token", "revoke", id)
	failAs(t, s, secret, scoped, "status")
	for _, p := range []string{"/v1/status", "/v1/nodes", "/v1/tokens", "/v1/sites"} {
		if status, body := s.API("GET", p, secret, "", nil); status != http.StatusForbidden || body["error"] != scoped {
			t.Errorf("GET %s with the deploy token: %d %v, want 403 %q", p, status, body, scoped)
		}
	}
	if _, body := s.Get("GET", "shop.localhost", "/"); strings.Contains(body, "by token") {
		t.Error("the token deployed to shop")
	}

	// Revoked: every call is a 401, at once.
	if got := s.MustCLI("token", "revoke", id); !strings.Contains(got, id) {
		t.Errorf("token revoke printed %q", got)
	}
	failAs(t, s, secret, "invalid token", "deploys", "--site", "blog")
	failAs(t, s, secret, "invalid token", "deploy", dir, "--site", "blog")
	if status, _ := s.API("GET", "/v1/sites/blog", secret, "", nil); status != http.StatusUnauthorized {
		t.Errorf("revoked token: status %d, want 401", status)
	}
	if list := s.MustCLI("token", "list"); strings.Contains(list, id) {
		t.Errorf("token list after revoke:\n%s", list)
	}
	s.FailCLI("token", "revoke", id)

	// The server never wrote the secret anywhere a log reader would see it
	// (its output is read once it has stopped).
	s.Kill(syscall.SIGTERM)
	if strings.Contains(s.Output(), secret) {
		t.Error("the server's output contains the deploy token")
	}
}
