package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/node"
	"github.com/atoll-hosting/atoll/peer"
)

// TestVersionE2E: `atoll version` names what the binary knows; a new
// cluster reaches the binary's feature level right after start, and
// status, node list and the API show each node's version and level; a
// node announcing an older binary is refused at join with one line.
func TestVersionE2E(t *testing.T) {
	t.Parallel()
	res, err := atolltest.RunCommand(exec.Command(atolltest.Bin(), "version"))
	if err != nil || res.Code != 0 {
		t.Fatalf("atoll version: %v %+v", err, res)
	}
	for _, want := range []string{"atoll " + atoll.Release + "\n", fmt.Sprintf("feature level: %d ", atoll.MaxFeatureLevel), fmt.Sprintf("data format:   %d ", node.DataDirFormat)} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("atoll version:\n%s\nwant it to contain %q", res.Stdout, want)
		}
	}

	const key = "version-e2e-key"
	s := atolltest.NewServer(t, atolltest.NodeConfig{ID: "core1", Bootstrap: true, AdminToken: "version-e2e-token", Flags: []string{"--cluster-key", key}})
	s.Start()
	waitFeatureLevel(t, s, atoll.MaxFeatureLevel)
	status := s.MustCLI("status")
	if !strings.Contains(status, fmt.Sprintf("features: cluster at level %d", atoll.MaxFeatureLevel)) || strings.Contains(status, "upgrade:") {
		t.Errorf("atoll status of a one-version cluster at level %d:\n%s", atoll.MaxFeatureLevel, status)
	}
	list := s.MustCLI("node", "list")
	lines := strings.Split(strings.TrimSpace(list), "\n")
	head, row := strings.Fields(lines[0]), strings.Fields(lines[1])
	if strings.Join(head[len(head)-2:], " ") != "VERSION LEVEL" || strings.Join(row[len(row)-2:], " ") != fmt.Sprintf("%s %d", atoll.Release, atoll.MaxFeatureLevel) {
		t.Errorf("atoll node list, want each node's version and level:\n%s", list)
	}

	// A node from before feature levels announces no level.
	body, _ := json.Marshal(atoll.JoinRequest{ID: "old-1", Role: atoll.RoleEdge, RaftAddr: "127.0.0.1:1", APIAddr: "127.0.0.1:2"})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, s.APIURL()+peer.JoinPath, bytes.NewReader(body))
	req.Header.Set(peer.HeaderClusterKey, key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var answer map[string]string
	json.NewDecoder(resp.Body).Decode(&answer)
	resp.Body.Close()
	want := fmt.Sprintf("node old-1 runs atoll a version from before feature levels, which knows feature levels up to 1, and the cluster is at level %d: run atoll %s", atoll.MaxFeatureLevel, atoll.Release)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(answer["error"], want) {
		t.Errorf("join of an old binary: %d %q, want 409 with %q", resp.StatusCode, answer["error"], want)
	}
	if !s.WaitOutput("join refused", 10*time.Second) {
		t.Error("the cluster did not log the refused join")
	}
}

// waitFeatureLevel waits up to 30 s for /v1/status to report level or
// above (the leader raises a new cluster to MaxFeatureLevel at once).
func waitFeatureLevel(t *testing.T, s *atolltest.Server, level int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st atoll.Status
		if err := s.Call(t.Context(), http.MethodGet, "/v1/status", nil, &st); err == nil && st.FeatureLevel >= level {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster did not reach feature level %d within 30s", level)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDataDirFormatE2E: the real binary upgrades a format-1 data dir in
// place (the sites served byte-exact after), and refuses a data dir of a
// newer format with one line, leaving it untouched.
func TestDataDirFormatE2E(t *testing.T) {
	t.Parallel()
	s := atolltest.NewServer(t, atolltest.NodeConfig{ID: "core1", Bootstrap: true, AdminToken: "format-e2e-token"})
	s.Start()
	files := map[string]string{"index.html": "<h1>format</h1>", "a/b.txt": strings.Repeat("bytes ", 300)}
	dir := t.TempDir()
	writeTree(t, dir, files)
	s.MustCLI("site", "create", "shop")
	s.MustCLI("deploy", dir, "--site", "shop")
	s.Kill(syscall.SIGTERM)

	// Back to format 1, as a binary from before formats leaves it: no
	// FORMAT, blobs/tmp its blob store's temp folder, with a crash's
	// leftover in it.
	data := s.Data
	for _, p := range []string{"FORMAT", "blobs/tmp", "blobs/temp"} {
		if err := os.RemoveAll(filepath.Join(data, p)); err != nil {
			t.Fatal(err)
		}
	}
	writeTree(t, filepath.Join(data, "blobs", "tmp"), map[string]string{"put-123": "half a blob"})
	s.Start()
	if !s.WaitOutput("data dir upgraded in place", 10*time.Second) {
		t.Error("the upgrade was not logged")
	}
	for name, body := range files {
		if _, got := s.Get("GET", "shop.localhost", "/"+name); got != body {
			t.Errorf("after the upgrade, /%s = %q, want %q", name, got, body)
		}
	}
	s.Kill(syscall.SIGTERM)
	if b, err := os.ReadFile(filepath.Join(data, "FORMAT")); err != nil || string(b) != "2\n" {
		t.Errorf("FORMAT = %q, %v; want 2", b, err)
	}
	if fi, err := os.Stat(filepath.Join(data, "blobs", "tmp")); err != nil || fi.IsDir() {
		t.Errorf("blobs/tmp: %v, %v; want the guard file", fi, err)
	}

	// A data dir from a newer format is refused, untouched.
	if err := os.WriteFile(filepath.Join(data, "FORMAT"), []byte("3\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	before := dirListing(t, data)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a binary that does not refuse it would serve on
	defer cancel()
	cmd := exec.CommandContext(ctx, atolltest.Bin(), "server", "--id", s.ID, "--data", data,
		"--raft-addr", s.RaftAddr, "--api-addr", s.APIAddr, "--http-addr", s.HTTPAddr)
	res, err := atolltest.RunCommand(cmd)
	if err != nil {
		t.Fatal(err)
	}
	var errLines []string
	for _, l := range strings.Split(strings.TrimSpace(res.Stderr), "\n") {
		if strings.HasPrefix(l, "atoll:") {
			errLines = append(errLines, l)
		}
	}
	want := "is format 3, and this atoll (" + atoll.Release
	if res.Code == 0 || len(errLines) != 1 || !strings.Contains(errLines[0], want) {
		t.Errorf("start on a format-3 data dir: exit %d, stderr:\n%s\nwant one line with %q", res.Code, res.Stderr, want)
	}
	if after := dirListing(t, data); after != before {
		t.Errorf("the refused data dir changed:\nbefore %s\nafter  %s", before, after)
	}
}

// dirListing is atolltest.Listing of dir.
func dirListing(t *testing.T, dir string) string {
	t.Helper()
	l, err := atolltest.Listing(dir)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
