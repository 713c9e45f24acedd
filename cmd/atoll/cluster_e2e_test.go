package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestEndToEndCluster runs real atoll processes: 3 core nodes and 1 edge,
// joined both ways (server --join and the CLI), a deploy read through the
// edge, kill -9 of the leader under reads and deploys, a restart, then a
// drain and remove, and checks every blob is back at R copies.
func TestEndToEndCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	const key, token = "e2e-cluster-key", "e2e-admin-token"
	mk := func(id string) *server {
		s := newServer(t)
		s.id, s.adminToken, s.bootstrap = id, token, false
		s.flags = []string{"--cluster-key", key}
		return s
	}
	core1, core2, core3, edge := mk("core1"), mk("core2"), mk("core3"), mk("edge1")
	core1.bootstrap = true
	core1.start()
	core2.flags = append(core2.flags, "--join", "http://"+core1.apiAddr)
	core2.start()
	// core3 waits to be added by an operator.
	core3.launch("/healthz")
	core1.mustCLI("node", "join", "core3", "--raft-addr", core3.raftAddr, "--api-addr", core3.apiAddr, "--http-addr", core3.httpAddr)
	core3.waitFor("/readyz")
	edge.flags = append(edge.flags, "--join", "http://"+core2.apiAddr, "--role", "edge")
	edge.start()
	cores := []*server{core1, core2, core3}

	list := core2.mustCLI("node", "list")
	for _, id := range []string{"core1", "core2", "core3", "edge1"} {
		if !strings.Contains(list, id) {
			t.Fatalf("node list lacks %s:\n%s", id, list)
		}
	}

	// Deploy through a follower; read every file through the edge.
	dir := t.TempDir()
	files := map[string]string{"index.html": "<h1>v1</h1>"}
	for i := range 20 {
		files[fmt.Sprintf("p/%d.html", i)] = fmt.Sprintf("<p>page %d</p>", i)
	}
	writeTree(t, dir, files)
	core2.mustCLI("site", "create", "shop")
	core2.mustCLI("deploy", dir, "--site", "shop")
	for name, body := range files {
		if _, got := edge.get("GET", "shop.localhost", "/"+name); got != body {
			t.Fatalf("edge /%s: got %q, want %q", name, got, body)
		}
	}

	// Kill -9 the leader while readers hit the edge; writes resume.
	leader := leaderOf(t, edge, cores)
	var failed, served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		c := &http.Client{Timeout: 5 * time.Second}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/p/%d.html", edge.httpAddr, i%20), nil)
			req.Host = "shop.localhost"
			resp, err := c.Do(req)
			if err != nil {
				failed.Add(1)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
			} else {
				served.Add(1)
			}
		}
	})
	killed := time.Now()
	leader.kill(syscall.SIGKILL)
	var alive *server
	for _, s := range cores {
		if s != leader {
			alive = s
			break
		}
	}
	files["index.html"] = "<h1>v2</h1>"
	writeTree(t, dir, files)
	var out string
	for {
		// The dead leader comes first in --api: the client moves on.
		o, _, code := alive.cli("deploy", dir, "--site", "shop", "--api", leader.apiAddr+","+alive.apiAddr)
		if code == 0 {
			out = o
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("no deploy succeeded within 30s of the leader's death")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("leader %s killed; a deploy through %s succeeded %s later", leader.id, alive.id, time.Since(killed).Round(time.Millisecond))
	if !strings.Contains(out, "1 uploaded") {
		t.Errorf("redeploy after failover:\n%s\nwant exactly one upload", out)
	}
	time.Sleep(500 * time.Millisecond) // keep reading a little after the deploy
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d edge reads failed with one core node down", failed.Load(), failed.Load()+served.Load())
	}
	if _, got := edge.get("GET", "shop.localhost", "/"); got != "<h1>v2</h1>" {
		t.Errorf("edge after failover: %q, want v2", got)
	}

	// The old leader restarts and catches up.
	leader.bootstrap = false
	leader.start()
	if _, got := leader.get("GET", "shop.localhost", "/"); got != "<h1>v2</h1>" {
		t.Errorf("restarted %s serves %q, want v2", leader.id, got)
	}

	// Drain and remove a core node; every blob is back at R copies.
	victim := core3
	if leaderOf(t, edge, cores) == core3 {
		victim = core2
	}
	other := core1
	if other == victim {
		other = core2
	}
	other.mustCLI("node", "drain", victim.id)
	other.mustCLI("node", "remove", victim.id)
	victim.kill(syscall.SIGKILL)
	status, rep := other.api("POST", "/v1/repair", token, "", nil)
	if status != 200 || rep["under_replicated"].(float64) != 0 || rep["missing"].(float64) != 0 || rep["referenced"].(float64) != 22 {
		t.Errorf("repair after drain+remove: %d %v, want 22 referenced, none under-replicated or missing", status, rep)
	}
	st := other.mustCLI("status")
	if !strings.Contains(st, "0 under-replicated, 0 missing") || strings.Contains(st, victim.id) {
		t.Errorf("status after remove:\n%s\nwant no under-replicated or missing blobs and no %s", st, victim.id)
	}
	for name, body := range files {
		if _, got := edge.get("GET", "shop.localhost", "/"+name); got != body {
			t.Errorf("edge /%s after remove: got %q, want %q", name, got, body)
		}
	}
}

// leaderOf asks s which of cores leads.
func leaderOf(t *testing.T, s *server, cores []*server) *server {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		_, st := s.api("GET", "/v1/status", s.token(), "", nil)
		for _, c := range cores {
			if st["leader_id"] == c.id {
				return c
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no leader known")
	return nil
}
