package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// TestScrubEndToEnd runs `atoll node scrub` on a single node whose disk
// rotted: a damaged compressed variant is rebuilt from the intact bytes
// (exit 0); damaged identity bytes, with no other node to copy from, are
// quarantined and the command fails with one line, while the edge answers
// 503 for that file, never the damaged bytes, and keeps serving the rest.
func TestScrubEndToEnd(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.Start()
	page := strings.Repeat("<p>scrub me, I am compressible</p>\n", 200)
	other := strings.Repeat("<p>an intact neighbour</p>\n", 100)
	site := t.TempDir()
	writeTree(t, site, map[string]string{"page.html": page, "other.html": other})
	s.MustCLI("site", "create", "blog")
	s.MustCLI("deploy", site, "--site", "blog")
	hash := atolltest.SHA256Hex(page)
	file := filepath.Join(s.Data, "blobs", hash[:2], hash)
	// The variants are made in the background after the upload.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(file + ".gz"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no gzip variant of %s after the deploy", hash)
		}
	}
	rot := func(path string) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0x01
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	rot(file + ".gz")
	out := s.MustCLI("node", "scrub", "n1")
	if !strings.Contains(out, "1 corrupt, 1 repaired") {
		t.Errorf("scrub of a damaged variant: %q, want 1 corrupt, 1 repaired", out)
	}
	if resp, body := s.Get("GET", "blog.localhost", "/page.html", "Accept-Encoding", "gzip"); resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" || len(body) == 0 {
		t.Errorf("gzip after the rebuild: %d %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}

	rot(file)
	errOut := s.FailCLI("node", "scrub", "n1")
	if !strings.Contains(errOut, "could not be replaced") || !strings.Contains(errOut, "quarantine") {
		t.Errorf("scrub of damaged identity bytes on a single node: %q, want a line saying it stays quarantined", errOut)
	}
	if resp, body := s.Get("GET", "blog.localhost", "/page.html"); resp.StatusCode != 503 || body == page || strings.Contains(body, "scrub me") {
		t.Errorf("a quarantined file: %d, %d bytes; want 503 and none of the damaged bytes", resp.StatusCode, len(body))
	}
	if _, body := s.Get("GET", "blog.localhost", "/other.html"); body != other {
		t.Errorf("an intact file beside it: %q", body)
	}
	entries, _ := os.ReadDir(filepath.Join(s.Data, "blobs", "quarantine"))
	if len(entries) != 2 {
		t.Errorf("quarantine holds %d folders, want 2 (one per damaged copy)", len(entries))
	}
}
