package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitAdmin waits until the admin token works: /readyz may answer before a
// bootstrapping node has written its token file and recorded its hash.
func (s *server) waitAdmin() {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if b, err := os.ReadFile(filepath.Join(s.data, "token")); err == nil {
			req, _ := http.NewRequest("GET", "http://"+s.apiAddr+"/v1/status", nil)
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(b)))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the admin token does not work 15s after start:\n%s", s.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cliAs runs an atoll client command against s with token as ATOLL_TOKEN,
// the way a CI job holding a deploy token would.
func (s *server) cliAs(token string, args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	cmd := exec.Command(atollBin, args...)
	// The last value of a repeated variable wins: token replaces the
	// caller's environment and the data dir's token file is out of reach.
	cmd.Env = append(os.Environ(), "ATOLL_API=http://"+s.apiAddr, "ATOLL_DATA="+s.t.TempDir(), "ATOLL_TOKEN="+token)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatalf("run atoll %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// mustAs runs a command with token that must succeed.
func (s *server) mustAs(token string, args ...string) string {
	s.t.Helper()
	out, errOut, code := s.cliAs(token, args...)
	if code != 0 {
		s.t.Fatalf("atoll %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// failAs runs a command with token that must fail with one line on stderr
// containing want.
func (s *server) failAs(token, want string, args ...string) {
	s.t.Helper()
	out, errOut, code := s.cliAs(token, args...)
	if code == 0 {
		s.t.Fatalf("atoll %s: exit 0, want failure\nstdout: %s", strings.Join(args, " "), out)
	}
	if lines := strings.Count(strings.TrimRight(errOut, "\n"), "\n") + 1; lines != 1 || !strings.Contains(errOut, want) {
		s.t.Errorf("atoll %s: stderr %q, want one line with %q", strings.Join(args, " "), errOut, want)
	}
}

// TestEndToEndDeployToken creates a site-scoped deploy token with the CLI,
// deploys and rolls back with it, checks that it can do nothing else, and
// revokes it.
func TestEndToEndDeployToken(t *testing.T) {
	s := newServer(t)
	s.start()
	s.waitAdmin()
	s.mustCLI("site", "create", "blog")
	s.mustCLI("site", "create", "shop")
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"index.html": "<h1>by token</h1>"})

	out, errOut, code := s.cli("token", "create", "--site", "blog", "--name", "ci")
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
	list := s.mustCLI("token", "list")
	if !strings.Contains(list, "blog") || !strings.Contains(list, "ci") || strings.Contains(list, secret) {
		t.Errorf("token list:\n%s\nwant the blog token named ci, without its secret", list)
	}
	id := strings.Fields(strings.Split(strings.TrimSpace(list), "\n")[1])[0]

	// What the token may do: deploy, list and roll back its own site.
	first := deployID(t, s.mustAs(secret, "deploy", dir, "--site", "blog"))
	if _, body := s.get("GET", "blog.localhost", "/"); body != "<h1>by token</h1>" {
		t.Errorf("site deployed with the token serves %q", body)
	}
	writeTree(t, dir, map[string]string{"index.html": "<h1>v2</h1>"})
	s.mustAs(secret, "deploy", dir, "--site", "blog")
	if history := s.mustAs(secret, "deploys", "--site", "blog"); !strings.Contains(history, first) {
		t.Errorf("deploys with the token:\n%s\nwant %s", history, first)
	}
	s.mustAs(secret, "rollback", "--site", "blog", first)
	if _, body := s.get("GET", "blog.localhost", "/"); body != "<h1>by token</h1>" {
		t.Errorf("after rollback with the token: %q", body)
	}

	// What it may not: 403 and one line naming its scope.
	const scoped = "this token is scoped to site blog"
	s.failAs(secret, scoped, "deploy", dir, "--site", "shop")
	s.failAs(secret, scoped, "deploys", "--site", "shop")
	s.failAs(secret, scoped, "site", "create", "mine")
	s.failAs(secret, scoped, "site", "list")
	s.failAs(secret, scoped, "site", "delete", "blog")
	s.failAs(secret, scoped, "token", "list")
	s.failAs(secret, scoped, "token", "create", "--site", "blog")
	s.failAs(secret, scoped, "token", "revoke", id)
	s.failAs(secret, scoped, "status")
	for _, p := range []string{"/v1/status", "/v1/nodes", "/v1/tokens", "/v1/sites"} {
		if status, body := s.api("GET", p, secret, "", nil); status != http.StatusForbidden || body["error"] != scoped {
			t.Errorf("GET %s with the deploy token: %d %v, want 403 %q", p, status, body, scoped)
		}
	}
	if _, body := s.get("GET", "shop.localhost", "/"); strings.Contains(body, "by token") {
		t.Error("the token deployed to shop")
	}

	// Revoked: every call is a 401, at once.
	if got := s.mustCLI("token", "revoke", id); !strings.Contains(got, id) {
		t.Errorf("token revoke printed %q", got)
	}
	s.failAs(secret, "invalid token", "deploys", "--site", "blog")
	s.failAs(secret, "invalid token", "deploy", dir, "--site", "blog")
	if status, _ := s.api("GET", "/v1/sites/blog", secret, "", nil); status != http.StatusUnauthorized {
		t.Errorf("revoked token: status %d, want 401", status)
	}
	if list := s.mustCLI("token", "list"); strings.Contains(list, id) {
		t.Errorf("token list after revoke:\n%s", list)
	}
	s.failCLI("token", "revoke", id)

	// The server never wrote the secret anywhere a log reader would see it
	// (its output is read once it has stopped).
	s.kill(syscall.SIGTERM)
	if strings.Contains(s.out.String(), secret) {
		t.Error("the server's output contains the deploy token")
	}
}
