package main

import (
	"encoding/json"
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

// feedersOf returns the node table as s's API answers it: each node's
// feeder ("" for a Raft member).
func feedersOf(t *testing.T, s *atolltest.Server) map[string]string {
	t.Helper()
	status, b, err := s.Node.API(t.Context(), "GET", "/v1/nodes", s.Token(), "", nil)
	if err != nil || status != 200 {
		t.Fatalf("GET /v1/nodes: %d, %v", status, err)
	}
	var list atoll.NodeList
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string)
	for _, nd := range list.Nodes {
		out[nd.ID] = nd.Feeder
	}
	return out
}

// awaitFeeders waits until the node table's feeders pass ok; it fails
// the test after 30 s.
func awaitFeeders(t *testing.T, s *atolltest.Server, what string, ok func(map[string]string) bool) map[string]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := feedersOf(t, s)
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node table's feeders are %v after 30s; want %s", got, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAssignedEdgesEndToEnd runs 3 cores with --max-direct-edges 2 and
// five edges started the way the README tells, with --join only: the
// first two become Raft non-voters (relays), the next three fed edges
// of the relay with the fewest fed edges, all serving a publish; `atoll
// node list` shows who feeds whom. A relay killed, its fed edges follow
// another feeder, serve the next publish and record it; the other relay
// removed with `atoll node remove` while it runs, its fed edge does the
// same; a fed edge restarted stays fed.
func TestAssignedEdgesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts eight processes")
	}
	cores := startCores(t, 3, "--max-direct-edges", "2")
	awaitLevel(t, cores[0], atoll.LevelFedEdges)
	edge := func(id string) *atolltest.Server {
		s := atolltest.NewServer(t, atolltest.NodeConfig{ID: id, AdminToken: coresToken,
			Flags: []string{"--cluster-key", coresKey, "--role", "edge", "--join", "http://" + cores[1].APIAddr}})
		s.Start()
		return s
	}
	relays := []*atolltest.Server{edge("edge1"), edge("edge2")}
	fed := []*atolltest.Server{edge("fed1"), edge("fed2"), edge("fed3")}
	for _, s := range relays {
		if out := s.Output(); !strings.Contains(out, "joined cluster as a raft non-voter") {
			t.Errorf("%s did not join as a Raft non-voter; output:\n%s", s.ID, out)
		}
	}
	for _, s := range fed {
		if out := s.Output(); !strings.Contains(out, "joined cluster as a fed edge") || strings.Contains(out, "raft started") {
			t.Errorf("%s did not join as a fed edge; output:\n%s", s.ID, out)
		}
	}
	got := feedersOf(t, cores[0])
	count := map[string]int{}
	for _, s := range fed {
		count[got[s.ID]]++
	}
	if count["edge1"] != 2 || count["edge2"] != 1 || got["edge1"] != "" || got["edge2"] != "" {
		t.Errorf("feeders %v: want fed1..3 spread over edge1 (2) and edge2 (1), edge1 and edge2 Raft members", got)
	}
	list := cores[0].MustCLI("node", "list")
	for _, s := range fed {
		if !strings.Contains(list, s.ID) || !strings.Contains(list, got[s.ID]) {
			t.Errorf("node list does not show %s fed by %s:\n%s", s.ID, got[s.ID], list)
		}
	}

	dir := t.TempDir()
	all := append(append([]*atolltest.Server{}, relays...), fed...)
	publish := func(version string, via *atolltest.Server, on []*atolltest.Server) {
		t.Helper()
		writeTree(t, dir, map[string]string{"index.html": "<h1>" + version + "</h1>"})
		via.MustCLI("deploy", dir, "--site", "shop")
		for _, s := range on {
			awaitEdge(t, s, "shop.localhost", "/", "<h1>"+version+"</h1>")
		}
	}
	cores[0].MustCLI("site", "create", "shop")
	publish("v1", cores[0], all)

	// edge1 dies: fed1 and fed3 follow another feeder, serve v2, and
	// their records say which.
	var orphans []*atolltest.Server
	for _, s := range fed {
		if got[s.ID] == "edge1" {
			orphans = append(orphans, s)
		}
	}
	relays[0].Kill(syscall.SIGKILL)
	publish("v2", cores[1], append(orphans, relays[1]))
	awaitFeeders(t, cores[0], "edge1's fed edges recorded with another feeder", func(m map[string]string) bool {
		for _, s := range orphans {
			if m[s.ID] == "edge1" || m[s.ID] == "" {
				return false
			}
		}
		return true
	})

	// edge2 removed while it runs: what it fed follows another feeder.
	cores[0].MustCLI("node", "remove", "edge2", "--force")
	publish("v3", cores[0], fed)
	awaitFeeders(t, cores[0], "no fed edge recorded with edge1 or edge2", func(m map[string]string) bool {
		for _, s := range fed {
			if f := m[s.ID]; f == "edge1" || f == "edge2" || f == "" {
				return false
			}
		}
		return true
	})

	// A fed edge restarted stays fed and serves the next publish.
	fed[0].Kill(syscall.SIGTERM)
	fed[0].Start()
	publish("v4", cores[2], fed)
	if f := feedersOf(t, cores[0])[fed[0].ID]; f == "" {
		t.Errorf("%s restarted as a Raft member", fed[0].ID)
	}
	if out := fed[0].Output(); strings.Contains(out, "raft started") {
		t.Errorf("%s restarted with a Raft log; output:\n%s", fed[0].ID, out)
	}
}
