package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// TestCutOffNodeLearnsItsRemovalEndToEnd runs three core nodes in
// network namespaces, cuts a follower off (its packets dropped), removes
// it meanwhile and heals the network: the removed node never receives the
// entries that say so, yet it stops serving sites (503 with the one-line
// reason), fails readiness and logs how it learned, without a restart,
// because it asks the other nodes once it hears from no leader. (A node
// frozen with SIGSTOP instead finds the removal in its socket buffers when
// it resumes, as TestRemovedNodeStopsServing's removed nodes do.)
func TestCutOffNodeLearnsItsRemovalEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	cn := atolltest.NewNet(3)
	if !cn.Enabled() {
		t.Skipf("needs network namespaces to cut a node off: %s", cn.Reason())
	}
	t.Cleanup(func() { cn.Close() }) // after the processes (last in, first out)
	const key, token = "e2e-removal-key", "e2e-removal-token"
	var members []*atolltest.Server
	for i := 1; i <= 3; i++ {
		host := atolltest.Subnet + strconv.Itoa(i)
		cfg := atolltest.NodeConfig{ID: fmt.Sprintf("core%d", i), AdminToken: token, Bootstrap: i == 1,
			Flags: []string{"--cluster-key", key}, Net: cn, NS: cn.NodeNS(i),
			RaftAddr: host + ":7000", APIAddr: host + ":9090", HTTPAddr: host + ":8080"}
		if i > 1 {
			cfg.Flags = append(cfg.Flags, "--join", "http://"+members[0].APIAddr)
		}
		s := atolltest.NewServer(t, cfg)
		s.Start()
		members = append(members, s)
	}
	// A connection whose packets go unanswered is given up after a few
	// retransmissions (instead of 15 minutes), discarding what it held:
	// the removal entries the leader sends the cut node are lost, not
	// delivered when the network heals.
	for i := 1; i <= 3; i++ {
		if out, err := cn.Command(t.Context(), cn.NodeNS(i), "sysctl", "-w", "net.ipv4.tcp_retries2=3").CombinedOutput(); err != nil {
			t.Skipf("cannot shorten TCP retransmissions in the namespaces: %v: %s", err, out)
		}
	}
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"index.html": "<h1>shop</h1>"})
	members[0].MustCLI("site", "create", "shop")
	members[0].MustCLI("deploy", dir, "--site", "shop")

	leader := leaderOf(t, members[0], members)
	cut := -1
	var rest []*atolltest.Server
	for i, s := range members {
		if s != leader && cut < 0 {
			cut = i
		} else {
			rest = append(rest, s)
		}
	}
	removed := members[cut]
	if _, got := removed.Get("GET", "shop.localhost", "/"); got != "<h1>shop</h1>" {
		t.Fatalf("%s serves %q before its removal", removed.ID, got)
	}
	if err := cn.Cut(cut + 1); err != nil {
		t.Fatal(err)
	}
	leader.MustCLI("node", "remove", removed.ID, "--force")
	rest[0].MustCLI("site", "create", "after") // more entries it misses
	// Heal once no node holds a Raft connection to the cut node any more
	// (given up, its entries dropped): nothing then delivers the removal.
	raftAddr := removed.RaftAddr
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		open := ""
		for i := 1; i <= 3; i++ {
			if i != cut+1 {
				out, _ := cn.Command(t.Context(), cn.NodeNS(i), "ss", "-tnH", "dst", raftAddr).CombinedOutput()
				open += strings.TrimSpace(string(out))
			}
		}
		if open == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connections to the cut node's Raft address %s still open after 90s:\n%s", raftAddr, open)
		}
	}
	if err := cn.Heal(cut + 1); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(60 * time.Second) // ends the test on a hang only
	for {
		resp, body := removed.Get("GET", "shop.localhost", "/")
		if resp.StatusCode == 503 && strings.Contains(body, "removed from the cluster") && strings.Count(strings.TrimSpace(body), "\n") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("removed %s's edge still answers %d %q after the network healed, want 503 saying it was removed", removed.ID, resp.StatusCode, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if status, body := removed.API("GET", "/readyz", "", "", nil); status != 503 || !strings.Contains(fmt.Sprint(body["error"]), "removed from the cluster") {
		t.Errorf("removed %s's /readyz: %d %v, want 503 saying it was removed", removed.ID, status, body)
	}
	if out := removed.Output(); !strings.Contains(out, "a peer reports this node removed from the cluster") {
		t.Errorf("removed %s did not log that a peer told it of its removal:\n%s", removed.ID, out)
	}
	for _, s := range rest {
		if _, got := s.Get("GET", "shop.localhost", "/"); got != "<h1>shop</h1>" {
			t.Errorf("%s serves %q after %s's removal", s.ID, got, removed.ID)
		}
	}
}
