package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEndToEndSnapshotAndLimits drives backups and limits the way an
// operator would: `atoll snapshot save`, changes, a refused damaged file,
// `atoll snapshot restore`, a kill -9 and restart, and writes afterwards;
// a deploy over --max-files; a slowloris cut off by the header timeouts
// given as flags.
func TestEndToEndSnapshotAndLimits(t *testing.T) {
	s := newServer(t)
	s.adminToken = "e2e-admin-token"
	s.flags = []string{"--max-files", "3", "--api-read-header-timeout", "1s", "--edge-read-timeout", "1s"}
	s.start()

	v1, v2 := t.TempDir(), t.TempDir()
	writeTree(t, v1, map[string]string{"index.html": "<h1>v1</h1>", "a.html": "a1", "b.html": "b1"})
	writeTree(t, v2, map[string]string{"index.html": "<h1>v2</h1>", "a.html": "a2", "b.html": "b2"})
	s.mustCLI("site", "create", "blog")
	s.mustCLI("deploy", v1, "--site", "blog")

	file := filepath.Join(t.TempDir(), "backups", "atoll.snap")
	os.MkdirAll(filepath.Dir(file), 0o755)
	out := s.mustCLI("snapshot", "save", file)
	if !strings.Contains(out, "applied index") || !strings.Contains(out, "bytes") {
		t.Errorf("save output %q, want the applied index and the size", out)
	}
	t.Logf("%s", strings.TrimSpace(out))
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left next to the backup: %v", left)
	}

	s.mustCLI("site", "create", "later")
	s.mustCLI("deploy", v2, "--site", "blog")
	if _, body := s.get("GET", "blog.localhost", "/"); body != "<h1>v2</h1>" {
		t.Fatalf("before restore blog serves %q", body)
	}

	// Limits: one file too many is a 413 through the CLI.
	writeTree(t, v2, map[string]string{"c.html": "c2"})
	if errOut := s.failCLI("deploy", v2, "--site", "blog"); !strings.Contains(errOut, "413") || !strings.Contains(errOut, "at most 3") {
		t.Errorf("deploy of 4 files with --max-files 3: %q, want a 413 saying the limit", errOut)
	}

	// A damaged backup is refused and changes nothing.
	good, _ := os.ReadFile(file)
	bad := filepath.Join(t.TempDir(), "bad.snap")
	os.WriteFile(bad, good[:len(good)-10], 0o600)
	if errOut := s.failCLI("snapshot", "restore", bad); !strings.Contains(errOut, "not a usable Atoll snapshot") {
		t.Errorf("restore of a truncated file: %q", errOut)
	}
	if out := s.mustCLI("site", "list"); !strings.Contains(out, "later") {
		t.Errorf("a refused restore changed the sites:\n%s", out)
	}

	out = s.mustCLI("snapshot", "restore", file)
	t.Logf("%s", strings.TrimSpace(out))
	check := func(when string) {
		t.Helper()
		if out := s.mustCLI("site", "list"); strings.Contains(out, "later") || !strings.Contains(out, "blog") {
			t.Errorf("%s: sites\n%s\nwant blog only", when, out)
		}
		if _, body := s.get("GET", "blog.localhost", "/"); body != "<h1>v1</h1>" {
			t.Errorf("%s: blog serves %q, want the saved v1", when, body)
		}
	}
	check("after restore")

	s.kill(syscall.SIGKILL)
	s.start()
	check("after kill -9 and restart")

	s.mustCLI("site", "create", "fresh")
	s.mustCLI("deploy", v1, "--site", "fresh")
	if _, body := s.get("GET", "fresh.localhost", "/"); body != "<h1>v1</h1>" {
		t.Errorf("new site after restore serves %q", body)
	}

	// The header timeouts from the flags cut a slowloris off on both
	// listeners.
	for name, addr := range map[string]string{"api": s.apiAddr, "edge": s.httpAddr} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		done := make(chan struct{})
		go func() { io.Copy(io.Discard, conn); close(done) }()
		for i, b := range []byte("GET / HTTP/1.1\r\nHost: blog.localhost\r\n") {
			if i > 0 {
				select {
				case <-done:
				case <-time.After(500 * time.Millisecond):
				}
			}
			conn.Write([]byte{b})
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%s: slowloris held its connection for %s, want about 1s", name, took)
		}
		conn.Close()
	}
}
