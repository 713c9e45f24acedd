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
	t.Parallel()
	s := newServer(t)
	s.AdminToken = "e2e-admin-token"
	s.Flags = []string{"--max-files", "3", "--api-read-header-timeout", "1s", "--edge-read-timeout", "1s"}
	s.Start()

	v1, v2 := t.TempDir(), t.TempDir()
	writeTree(t, v1, map[string]string{"index.html": "<h1>v1</h1>", "a.html": "a1", "b.html": "b1"})
	writeTree(t, v2, map[string]string{"index.html": "<h1>v2</h1>", "a.html": "a2", "b.html": "b2"})
	s.MustCLI("site", "create", "blog")
	s.MustCLI("deploy", v1, "--site", "blog")

	file := filepath.Join(t.TempDir(), "backups", "atoll.snap")
	os.MkdirAll(filepath.Dir(file), 0o755)
	out := s.MustCLI("snapshot", "save", file)
	if !strings.Contains(out, "applied index") || !strings.Contains(out, "bytes") {
		t.Errorf("save output %q, want the applied index and the size", out)
	}
	t.Logf("%s", strings.TrimSpace(out))
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(file), ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left next to the backup: %v", left)
	}

	s.MustCLI("site", "create", "later")
	s.MustCLI("deploy", v2, "--site", "blog")
	if _, body := s.Get("GET", "blog.localhost", "/"); body != "<h1>v2</h1>" {
		t.Fatalf("before restore blog serves %q", body)
	}

	// Limits: one file too many is a 413 through the CLI.
	writeTree(t, v2, map[string]string{"c.html": "c2"})
	if errOut := s.FailCLI("deploy", v2, "--site", "blog"); !strings.Contains(errOut, "413") || !strings.Contains(errOut, "at most 3") {
		t.Errorf("deploy of 4 files with --max-files 3: %q, want a 413 saying the limit", errOut)
	}

	// A damaged backup is refused and changes nothing.
	good, _ := os.ReadFile(file)
	bad := filepath.Join(t.TempDir(), "bad.snap")
	os.WriteFile(bad, good[:len(good)-10], 0o600)
	if errOut := s.FailCLI("snapshot", "restore", bad); !strings.Contains(errOut, "not a usable Atoll snapshot") {
		t.Errorf("restore of a truncated file: %q", errOut)
	}
	if out := s.MustCLI("site", "list"); !strings.Contains(out, "later") {
		t.Errorf("a refused restore changed the sites:\n%s", out)
	}

	out = s.MustCLI("snapshot", "restore", file)
	t.Logf("%s", strings.TrimSpace(out))
	check := func(when string) {
		t.Helper()
		if out := s.MustCLI("site", "list"); strings.Contains(out, "later") || !strings.Contains(out, "blog") {
			t.Errorf("%s: sites\n%s\nwant blog only", when, out)
		}
		if _, body := s.Get("GET", "blog.localhost", "/"); body != "<h1>v1</h1>" {
			t.Errorf("%s: blog serves %q, want the saved v1", when, body)
		}
	}
	check("after restore")

	s.Kill(syscall.SIGKILL)
	s.Start()
	check("after kill -9 and restart")

	s.MustCLI("site", "create", "fresh")
	s.MustCLI("deploy", v1, "--site", "fresh")
	if _, body := s.Get("GET", "fresh.localhost", "/"); body != "<h1>v1</h1>" {
		t.Errorf("new site after restore serves %q", body)
	}

	// The header timeouts from the flags cut a slowloris off on both
	// listeners: the connection ends while the request's headers are still
	// trickling in, one byte every 500ms (sending them all would take 19s).
	slow := []byte("GET / HTTP/1.1\r\nHost: blog.localhost\r\n")
	for name, addr := range map[string]string{"api": s.APIAddr, "edge": s.HTTPAddr} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { io.Copy(io.Discard, conn); close(done) }()
		sent := 0
	trickle:
		for i, b := range slow {
			if i > 0 {
				select {
				case <-done:
					break trickle
				case <-time.After(500 * time.Millisecond):
				}
			}
			conn.Write([]byte{b})
			sent++
		}
		if sent == len(slow) {
			t.Errorf("%s: a slowloris sent all %d bytes of its headers, one every 500ms, and still had its connection; want it cut off by the 1s header timeout", name, sent)
		}
		conn.Close()
		<-done
	}
}
