package upgrade

import (
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// TestFeedFromBelowFedLevel: an edge of the current binary started with
// --feed-from in a cluster of the previous release (below
// atoll.LevelFedEdges) says why it refuses in its log and joins as a Raft
// non-voter, which serves the cluster's sites like any edge; one started
// with --join alone asks to be assigned, which the leader of the previous
// release ignores: it joins as a non-voter too.
func TestFeedFromBelowFedLevel(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the previous release")
	}
	oldBin, _ := buildPrevious(t, t.TempDir())
	core := atolltest.NewServer(t, atolltest.NodeConfig{Bin: oldBin, ID: "core1", Bootstrap: true, AdminToken: adminToken,
		Flags: []string{"--cluster-key", clusterKey}})
	core.Start()
	edge := atolltest.NewServer(t, atolltest.NodeConfig{ID: "edge1", AdminToken: adminToken,
		Flags: []string{"--cluster-key", clusterKey, "--role", "edge", "--feed-from", "http://" + core.APIAddr}})
	edge.Start()
	if out := edge.Output(); !strings.Contains(out, "--feed-from refused: the cluster is below the feature level of fed edges") || !strings.Contains(out, "raft started") {
		t.Errorf("edge1 did not refuse --feed-from and join Raft; output:\n%s", out)
	}
	joined := atolltest.NewServer(t, atolltest.NodeConfig{ID: "edge2", AdminToken: adminToken,
		Flags: []string{"--cluster-key", clusterKey, "--role", "edge", "--join", "http://" + core.APIAddr}})
	joined.Start()
	if out := joined.Output(); !strings.Contains(out, "joined cluster as a raft non-voter") || !strings.Contains(out, "raft started") {
		t.Errorf("edge2 did not join Raft; output:\n%s", out)
	}
	out := core.MustCLI("node", "list")
	for _, line := range []string{"edge1  edge  active  Follower", "edge2  edge  active  Follower"} {
		if !strings.Contains(out, line) {
			t.Errorf("node list does not show %q:\n%s", line, out)
		}
	}
	dir := t.TempDir()
	if err := atolltest.WriteTree(dir, map[string]string{"index.html": "<h1>old</h1>"}); err != nil {
		t.Fatal(err)
	}
	core.MustCLI("site", "create", "shop")
	core.MustCLI("deploy", dir, "--site", "shop")
	for _, s := range []*atolltest.Server{edge, joined} {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			resp, body := s.Get("GET", "shop.localhost", "/")
			if resp.StatusCode == 200 && body == "<h1>old</h1>" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s serves %d %q, want the deploy", s.ID, resp.StatusCode, body)
			}
		}
	}
}
