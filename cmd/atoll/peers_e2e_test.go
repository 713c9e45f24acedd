package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// The cluster key and admin token of the nodes startCores starts.
const coresKey, coresToken = "e2e-peers-key", "e2e-peers-admin-token"

// startCores starts n core nodes on loopback, each with flags: the first
// bootstraps, the others join through it.
func startCores(t *testing.T, n int, flags ...string) []*atolltest.Server {
	t.Helper()
	var cores []*atolltest.Server
	for i := range n {
		cfg := atolltest.NodeConfig{ID: fmt.Sprintf("core%d", i+1), AdminToken: coresToken, Flags: append([]string{"--cluster-key", coresKey}, flags...)}
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Flags = append(cfg.Flags, "--join", "http://"+cores[0].APIAddr)
		}
		s := atolltest.NewServer(t, cfg)
		s.Start()
		cores = append(cores, s)
	}
	return cores
}

// siteFiles is count pages whose contents depend on version.
func siteFiles(version string, count int) map[string]string {
	files := map[string]string{"index.html": "<h1>" + version + "</h1>"}
	for i := range count - 1 {
		files[fmt.Sprintf("p/%03d.html", i)] = fmt.Sprintf("<p>%s page %d</p>", version, i)
	}
	return files
}

// timedDeploy deploys dir to site through s and returns how long it took;
// ctx bounds it.
func timedDeploy(t *testing.T, ctx context.Context, s *atolltest.Server, dir, site string) (time.Duration, string) {
	t.Helper()
	start := time.Now()
	res, err := s.RunCLI(ctx, s.Token(), "deploy", dir, "--site", site, "--no-hash-cache")
	took := time.Since(start)
	if err != nil || res.Code != 0 {
		t.Fatalf("deploy %s through %s after %s: %v, exit %d\n%s%s", dir, s.ID, took.Round(time.Millisecond), err, res.Code, res.Stdout, res.Stderr)
	}
	return took, res.Stdout
}

// TestFrozenCoreNodeDeploy freezes (SIGSTOP) one of three core nodes and
// checks that a deploy of 300 new files takes at most twice as long as the
// same deploy with every node up: the frozen node costs one timeout, after
// which its calls are skipped, not one timeout per blob. Every upload is
// still acknowledged by a majority of its owners (the files read back
// through both live nodes' edges and, once thawed, the frozen one's).
func TestFrozenCoreNodeDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	cores := startCores(t, 3)
	via := leaderOf(t, cores[0], cores) // deploys go through the leader
	var frozen, other *atolltest.Server
	for _, s := range cores {
		switch {
		case s == via:
		case frozen == nil:
			frozen = s
		default:
			other = s
		}
	}
	via.MustCLI("site", "create", "up")
	via.MustCLI("site", "create", "frozen")
	via.MustCLI("site", "create", "warm")
	upDir, frozenDir, warmDir := t.TempDir(), t.TempDir(), t.TempDir()
	writeTree(t, upDir, siteFiles("all-up", 300))
	files := siteFiles("one-frozen", 300)
	writeTree(t, frozenDir, files)
	writeTree(t, warmDir, map[string]string{"index.html": "warm-up"})

	up, out := timedDeploy(t, t.Context(), via, upDir, "up")
	if !strings.Contains(out, "300 uploaded") {
		t.Fatalf("deploy with every node up:\n%s\nwant 300 uploaded", out)
	}

	if err := frozen.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			frozen.Signal(syscall.SIGCONT)
		}
	}
	t.Cleanup(thaw)
	// The first call to the frozen node waits for its timeout; this small
	// deploy pays it.
	warm, _ := timedDeploy(t, t.Context(), via, warmDir, "warm")
	// Bounded so that a node that waits a timeout per blob fails in
	// reasonable time rather than after minutes.
	ctx, cancel := context.WithTimeout(t.Context(), 4*up+30*time.Second)
	defer cancel()
	slow, out := timedDeploy(t, ctx, via, frozenDir, "frozen")
	t.Logf("300 files: %s with every node up, %s with %s frozen (a one-file deploy first: %s)", up.Round(time.Millisecond), slow.Round(time.Millisecond), frozen.ID, warm.Round(time.Millisecond))
	if !strings.Contains(out, "300 uploaded") {
		t.Errorf("deploy with %s frozen:\n%s\nwant 300 uploaded", frozen.ID, out)
	}
	if slow > 2*up {
		t.Errorf("deploy with %s frozen took %s, more than twice the %s it takes with every node up", frozen.ID, slow.Round(time.Millisecond), up.Round(time.Millisecond))
	}
	for _, s := range []*atolltest.Server{via, other} {
		for name, body := range files {
			if _, got := s.Get("GET", "frozen.localhost", "/"+name); got != body {
				t.Fatalf("%s's edge /%s: got %q, want %q", s.ID, name, got, body)
			}
		}
	}
	thaw()
	frozen.WaitFor("/readyz")
	for name, body := range files {
		if _, got := frozen.Get("GET", "frozen.localhost", "/"+name); got != body {
			t.Fatalf("%s's edge after SIGCONT, /%s: got %q, want %q", frozen.ID, name, got, body)
		}
	}
}

// TestRemovedNodeStopsServing removes the leader three times over (the
// request sent to the leader itself, then to a follower, then to the
// leader) and checks that each removal succeeds at once and that the
// removed node stops serving sites (503 saying it was removed) and fails
// readiness, while the others keep serving.
func TestRemovedNodeStopsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six processes")
	}
	members := startCores(t, 3)
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"index.html": "<h1>shop</h1>"})
	members[0].MustCLI("site", "create", "shop")
	members[0].MustCLI("deploy", dir, "--site", "shop")

	for round := range 3 {
		leader := leaderOf(t, members[0], members)
		via := leader
		if round%2 == 1 {
			for _, s := range members {
				if s != leader {
					via = s
					break
				}
			}
		}
		via.MustCLI("node", "remove", leader.ID)
		var rest []*atolltest.Server
		for _, s := range members {
			if s != leader {
				rest = append(rest, s)
			}
		}

		// The removed node hears of it within an election timeout or so.
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, body := leader.Get("GET", "shop.localhost", "/")
			if resp.StatusCode == 503 && strings.Contains(body, "removed from the cluster") && strings.Count(strings.TrimSpace(body), "\n") == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: removed %s's edge still answers %d %q, want 503 saying it was removed", round, leader.ID, resp.StatusCode, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if status, body := leader.API("GET", "/readyz", "", "", nil); status != 503 || !strings.Contains(fmt.Sprint(body["error"]), "removed from the cluster") {
			t.Errorf("round %d: removed %s's /readyz: %d %v, want 503 saying it was removed", round, leader.ID, status, body)
		}
		if !leader.WaitOutput("this node was removed from the cluster", 10*time.Second) {
			t.Errorf("round %d: removed %s did not log its removal", round, leader.ID)
		}
		leader.Kill(syscall.SIGKILL)

		for _, s := range rest {
			if _, got := s.Get("GET", "shop.localhost", "/"); got != "<h1>shop</h1>" {
				t.Errorf("round %d: %s serves %q after %s's removal", round, s.ID, got, leader.ID)
			}
		}
		// A fresh node takes the removed one's place.
		id := fmt.Sprintf("core%d", 4+round)
		s := atolltest.NewServer(t, atolltest.NodeConfig{ID: id, AdminToken: coresToken,
			Flags: []string{"--cluster-key", coresKey, "--join", "http://" + rest[0].APIAddr}})
		s.Start()
		members = append(rest, s)
	}
}
