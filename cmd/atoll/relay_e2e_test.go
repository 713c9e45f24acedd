package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
)

// awaitEdge waits until s's edge answers path of host with want; it
// fails the test after 30 s (a hang, not a verdict on speed).
func awaitEdge(t *testing.T, s *atolltest.Server, host, path, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, body := s.Get("GET", host, path)
		if resp.StatusCode == 200 && body == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s serves %s%s as %d %q, want %q", s.ID, host, path, resp.StatusCode, body, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// awaitLevel waits until s reports the cluster at feature level want.
func awaitLevel(t *testing.T, s *atolltest.Server, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, st := s.API("GET", "/v1/status", s.Token(), "", nil)
		if lvl, _ := st["feature_level"].(float64); int(lvl) >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster feature level %v after 30s, want %d", st["feature_level"], want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFedEdgesEndToEnd runs 3 cores, a relay (a Raft non-voter edge) and
// two edges fed by it (--feed-from): a publish is served by every fed
// edge; the node table records them as fed, outside the Raft
// configuration; the relay killed, they follow a core and serve the next
// publish; a fed edge stopped while the cores compact their logs comes
// back by snapshot; and `atoll node remove` of a fed edge stops it
// serving.
func TestFedEdgesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six processes")
	}
	compact := []string{"--raft-snapshot-threshold", "8", "--raft-snapshot-interval", "50ms", "--raft-trailing-logs", "16"}
	cores := startCores(t, 3, compact...)
	awaitLevel(t, cores[0], atoll.LevelFedEdges)
	edge := func(id string, flags ...string) *atolltest.Server {
		cfg := atolltest.NodeConfig{ID: id, AdminToken: coresToken,
			Flags: append([]string{"--cluster-key", coresKey, "--role", "edge"}, flags...)}
		s := atolltest.NewServer(t, cfg)
		s.Start()
		return s
	}
	relay := edge("relay1", "--join", "http://"+cores[0].APIAddr)
	fed := []*atolltest.Server{
		edge("fed1", "--feed-from", "http://"+relay.APIAddr),
		edge("fed2", "--feed-from", "http://"+relay.APIAddr, "--join", "http://"+cores[1].APIAddr),
	}

	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"index.html": "<h1>v1</h1>"})
	cores[0].MustCLI("site", "create", "shop")
	cores[0].MustCLI("deploy", dir, "--site", "shop")
	for _, s := range append([]*atolltest.Server{relay}, fed...) {
		awaitEdge(t, s, "shop.localhost", "/", "<h1>v1</h1>")
	}
	out := cores[0].MustCLI("node", "list")
	for _, id := range []string{"fed1", "fed2"} {
		if !strings.Contains(out, id) {
			t.Errorf("node list lacks %s:\n%s", id, out)
		}
	}
	_, st := cores[0].API("GET", "/v1/nodes", cores[0].Token(), "", nil)
	t.Logf("nodes: %v", st)
	if !strings.Contains(fmt.Sprint(st), "feeder:relay1") {
		t.Errorf("the node table does not record relay1 as the fed edges' feeder: %v", st)
	}
	if out := fed[0].Output(); !strings.Contains(out, "following") || strings.Contains(out, "raft started") {
		t.Errorf("fed1 did not follow a feeder outside Raft; output:\n%s", out)
	}

	// The relay dies: the fed edges move to a core and follow on.
	relay.Kill(syscall.SIGKILL)
	writeTree(t, dir, map[string]string{"index.html": "<h1>v2</h1>"})
	cores[1].MustCLI("deploy", dir, "--site", "shop")
	for _, s := range fed {
		awaitEdge(t, s, "shop.localhost", "/", "<h1>v2</h1>")
	}

	// fed2 stopped past a compaction of every core's log comes back by
	// snapshot.
	fed[1].Kill(syscall.SIGTERM)
	for i := range 40 {
		cores[0].MustCLI("site", "create", fmt.Sprintf("filler%02d", i))
	}
	writeTree(t, dir, map[string]string{"index.html": "<h1>v3</h1>"})
	cores[0].MustCLI("deploy", dir, "--site", "shop")
	fed[1].Start()
	awaitEdge(t, fed[1], "shop.localhost", "/", "<h1>v3</h1>")
	if out := fed[1].Output(); !strings.Contains(out, "restored the feeder's snapshot") {
		t.Errorf("fed2 did not come back by snapshot; output:\n%s", out)
	}

	// atoll node remove of a fed edge: it stops serving.
	cores[0].MustCLI("node", "remove", "fed1", "--force")
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, body := fed[0].Get("GET", "shop.localhost", "/")
		if resp.StatusCode == 503 && strings.Contains(body, "removed from the cluster") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("removed fed1 answers %d %q, want 503 saying it was removed", resp.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	awaitEdge(t, fed[1], "shop.localhost", "/", "<h1>v3</h1>")
}
