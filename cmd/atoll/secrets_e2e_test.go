package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/atoll-hosting/atoll/atolltest"
)

// writeSecret writes a secret to a file of its own, mode 0600, and
// returns the path.
func writeSecret(t *testing.T, name, secret string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// adminStatus returns the status of GET /v1/status on s with token.
func adminStatus(t *testing.T, s *atolltest.Server, token string) int {
	t.Helper()
	status, _ := s.API("GET", "/v1/status", token, "", nil)
	return status
}

// waitOutput waits up to 30s until s's output contains want.
func waitOutput(t *testing.T, s *atolltest.Server, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(s.Output(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q; output:\n%s", s.ID, want, s.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestEndToEndAdminTokenRotation rotates the admin token through one node
// of a three-node cluster: the old token is refused on every node, the new
// one works on every node; then the bootstrap node and a joined node are
// restarted with the old --admin-token, which they report and ignore: the
// old token stays refused everywhere.
func TestEndToEndAdminTokenRotation(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three processes")
	}
	const old = "e2e-admin-token-before-rotation"
	keyFile := writeSecret(t, "cluster-key", "e2e-cluster-key")
	mk := func(id string, flags ...string) *atolltest.Server {
		return atolltest.NewServer(t, atolltest.NodeConfig{ID: id, AdminToken: old,
			Flags: append([]string{"--cluster-key-file", keyFile}, flags...)})
	}
	core1 := mk("core1")
	core1.Bootstrap = true
	core1.Start()
	core2 := mk("core2", "--join", core1.APIURL())
	core2.Start()
	core3 := mk("core3", "--join", core1.APIURL())
	core3.Start()
	cores := []*atolltest.Server{core1, core2, core3}

	out, errOut, code := core2.CLIAs(old, "token", "rotate-admin")
	if code != 0 {
		t.Fatalf("token rotate-admin: exit %d: %s", code, errOut)
	}
	next := strings.TrimSpace(out)
	if !strings.HasPrefix(next, "atl_") || strings.ContainsAny(next, " \n") || next == old {
		t.Fatalf("token rotate-admin printed %q on stdout, want the new secret alone", out)
	}
	if !strings.Contains(errOut, "cannot be shown again") {
		t.Errorf("token rotate-admin stderr %q, want a note that the secret is shown once", errOut)
	}
	for _, s := range cores {
		s.AdminToken = next // what Token, MustCLI and WaitFor use from now on
	}
	checkRotated := func(when string) {
		t.Helper()
		for _, s := range cores {
			// Each node takes the new token once it has applied the
			// change; then the old one must be refused there.
			deadline := time.Now().Add(15 * time.Second)
			for adminStatus(t, s, next) != http.StatusOK {
				if time.Now().After(deadline) {
					t.Fatalf("%s: %s refuses the new admin token", when, s.ID)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if got := adminStatus(t, s, old); got != http.StatusUnauthorized {
				t.Errorf("%s: %s answers %d to the old admin token, want 401", when, s.ID, got)
			}
		}
	}
	checkRotated("after the rotation")
	if errOut := core1.FailAs(old, "site", "list"); !strings.Contains(errOut, "401") {
		t.Errorf("CLI with the old token: %q, want a 401", errOut)
	}

	// Restart the bootstrap node (with --bootstrap, as a unit file would)
	// and a joined node, both with the old --admin-token: each reports that
	// it is not the cluster's once caught up, and writes nothing.
	for _, s := range []*atolltest.Server{core1, core3} {
		s.Kill(syscall.SIGTERM)
		s.AdminToken = old
		s.Start()
		waitOutput(t, s, "is not the cluster's")
		s.AdminToken = next
	}
	checkRotated("after restarts with the old --admin-token")
	core3.MustCLI("site", "create", "after-rotation")
}

// TestEndToEndRotateGeneratedToken is `make run` after a rotation: a
// single node that generated its admin token into <data>/token rotates it
// (a token of the operator's, --from-file); the node rewrites the file, so
// that clients reading it keep working, also after a restart with
// --bootstrap; the token printed at bootstrap is refused.
func TestEndToEndRotateGeneratedToken(t *testing.T) {
	t.Parallel()
	s := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true})
	s.Start()
	waitAdmin(t, s)
	generated := s.Token()
	const next = "e2e-operator-chosen-admin-token"
	out, errOut, code := s.CLIAs(generated, "token", "rotate-admin", "--from-file", writeSecret(t, "new-token", next))
	if code != 0 || out != "" {
		t.Fatalf("token rotate-admin --from-file: exit %d, stdout %q (want none), stderr %s", code, out, errOut)
	}
	if got := s.Token(); got != next {
		t.Fatalf("<data>/token holds %q after the rotation, want the new token", got)
	}
	s.Kill(syscall.SIGTERM)
	s.Start()
	waitAdmin(t, s)
	if got := adminStatus(t, s, generated); got != http.StatusUnauthorized {
		t.Errorf("the generated token after the rotation and a restart: %d, want 401", got)
	}
	if errOut := s.FailAs(next, "token", "rotate-admin", "--from-file", writeSecret(t, "weak", "short")); !strings.Contains(errOut, "24 to 256") {
		t.Errorf("rotate-admin to a short token: %q, want the bounds", errOut)
	}
}

// TestEndToEndSecretFiles starts a node with --admin-token-file and
// --cluster-key-file: neither secret is in its /proc/<pid>/cmdline nor in
// /debug/pprof/cmdline. A node given both as flags has them redacted from
// /debug/pprof/cmdline.
func TestEndToEndSecretFiles(t *testing.T) {
	t.Parallel()
	const token, key = "e2e-admin-token-from-a-file", "e2e-cluster-key-from-a-file"
	s := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true,
		Flags: []string{"--admin-token-file", writeSecret(t, "token", token), "--cluster-key-file", writeSecret(t, "key", key)}})
	s.Start()
	s.AdminToken = token
	if status := adminStatus(t, s, token); status != http.StatusOK {
		t.Fatalf("the token of --admin-token-file: %d, want 200", status)
	}
	if _, err := os.Stat(filepath.Join(s.Data, "token")); err == nil {
		t.Error("a node given --admin-token-file wrote <data>/token")
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", s.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	checkNoSecret(t, "/proc/<pid>/cmdline", string(cmdline), "--admin-token-file", token, key)
	checkNoSecret(t, "/debug/pprof/cmdline", pprofCmdline(t, s), "--admin-token-file", token, key)

	// Secrets given as flags are on the command line, the operator's
	// choice, but the profile redacts them.
	f := atolltest.NewServer(t, atolltest.NodeConfig{ID: "n2", Bootstrap: true, AdminToken: token + "-flag",
		Flags: []string{"--cluster-key", key + "-flag"}})
	f.Start()
	got := pprofCmdline(t, f)
	checkNoSecret(t, "/debug/pprof/cmdline", got, "--cluster-key", token+"-flag", key+"-flag")
	if !strings.Contains(got, "[redacted]") {
		t.Errorf("/debug/pprof/cmdline %q: want [redacted] in place of the secrets", got)
	}
}

// pprofCmdline returns /debug/pprof/cmdline of s, read with its admin
// token.
func pprofCmdline(t *testing.T, s *atolltest.Server) string {
	t.Helper()
	status, body, err := s.Node.API(t.Context(), "GET", "/debug/pprof/cmdline", s.Token(), "", nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("/debug/pprof/cmdline: %d %v", status, err)
	}
	return string(body)
}

// checkNoSecret fails if text (named what) contains one of secrets, or
// lacks want (so that it is the command line at all).
func checkNoSecret(t *testing.T, what, text, want string, secrets ...string) {
	t.Helper()
	if !strings.Contains(text, want) {
		t.Errorf("%s %q lacks %s", what, text, want)
	}
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s %q reveals the secret %q", what, text, s)
		}
	}
}

// TestEndToEndCertKeySealed puts a custom domain's certificate on a node
// with a cluster key: the node serves it over HTTPS, and neither a
// snapshot saved afterwards (decompressed) nor the node's Raft log and
// state files hold the private key's PEM.
func TestEndToEndCertKeySealed(t *testing.T) {
	t.Parallel()
	httpsAddr, err := atolltest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	s := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true, AdminToken: "e2e-admin-token-sealed-keys",
		Flags: []string{"--cluster-key-file", writeSecret(t, "key", "e2e-cluster-key"), "--https-addr", httpsAddr}})
	s.Start()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"index.html": "<h1>sealed</h1>"})
	s.MustCLI("site", "create", "shop", "--domain", "shop.example.com")
	s.MustCLI("deploy", dir, "--site", "shop")
	siteCA, siteCert, siteKey := siteCertificate(t, "shop.example.com")
	certFile, keyFile := writeSecret(t, "shop.pem", string(siteCert)), writeSecret(t, "shop-key.pem", string(siteKey))
	s.MustCLI("cert", "put", "--site", "shop", "--domain", "shop.example.com", "--cert", certFile, "--key", keyFile)

	// The edge opens the sealed key: the handshake and the page work.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: siteCA, ServerName: "shop.example.com"}}
	defer tr.CloseIdleConnections()
	resp, body, err := atolltest.Fetch(t.Context(), &http.Client{Transport: tr, Timeout: 5 * time.Second},
		"GET", "https://"+httpsAddr+"/", "shop.example.com")
	if err != nil || resp.StatusCode != 200 || string(body) != "<h1>sealed</h1>" {
		t.Fatalf("https://shop.example.com/: %v %q, want the page", err, body)
	}

	snap := filepath.Join(t.TempDir(), "atoll.snap")
	s.MustCLI("snapshot", "save", snap)
	state := decompressSnapshot(t, snap)
	if !bytes.Contains(state, []byte("shop.example.com")) {
		t.Fatal("the decompressed snapshot lacks the certificate's domain: not the state?")
	}
	keyLines := pemBody(siteKey)
	checkNoKey(t, "the snapshot", state, keyLines)
	s.Kill(syscall.SIGTERM)
	for _, f := range []string{"raft/raft.db", "raft/fsm.db"} {
		b, err := os.ReadFile(filepath.Join(s.Data, f))
		if err != nil {
			t.Fatal(err)
		}
		checkNoKey(t, f, b, keyLines)
	}
}

// decompressSnapshot returns the state inside a snapshot file: the zstd
// stream after its fixed header (raft/snapshot.go).
func decompressSnapshot(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte{0x28, 0xb5, 0x2f, 0xfd}) // the zstd frame magic
	if i < 0 {
		t.Fatalf("%s has no zstd frame", path)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	state, err := dec.DecodeAll(b[i:], nil)
	if err != nil {
		t.Fatalf("decompress %s: %v", path, err)
	}
	return state
}

// pemBody returns the base64 lines of a PEM block.
func pemBody(p []byte) [][]byte {
	var lines [][]byte
	for _, l := range bytes.Split(p, []byte("\n")) {
		if len(l) > 0 && !bytes.HasPrefix(l, []byte("-----")) {
			lines = append(lines, l)
		}
	}
	return lines
}

// checkNoKey fails if data (named what) holds "PRIVATE KEY" or any base64
// line of the key.
func checkNoKey(t *testing.T, what string, data []byte, keyLines [][]byte) {
	t.Helper()
	if bytes.Contains(data, []byte("PRIVATE KEY")) {
		t.Errorf("%s holds a PEM private key", what)
	}
	for _, l := range keyLines {
		if bytes.Contains(data, l) {
			t.Errorf("%s holds the line %q of the private key", what, l)
		}
	}
}
