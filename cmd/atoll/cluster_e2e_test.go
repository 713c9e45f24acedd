package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// TestEndToEndCluster runs real atoll processes: 3 core nodes and 1 edge,
// joined both ways (server --join and the CLI), a deploy read through the
// edge, kill -9 of the leader under reads and deploys, a restart, then a
// drain and remove, and checks every blob is back at R copies.
func TestEndToEndCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts four processes")
	}
	const key, token = "e2e-cluster-key", "e2e-admin-token"
	mk := func(id string, flags ...string) *atolltest.Server {
		return atolltest.NewServer(t, atolltest.NodeConfig{ID: id, AdminToken: token, Flags: append([]string{"--cluster-key", key}, flags...)})
	}
	core1, core3 := mk("core1"), mk("core3")
	core1.Bootstrap = true
	core1.Start()
	core2 := mk("core2", "--join", "http://"+core1.APIAddr)
	core2.Start()
	// core3 waits to be added by an operator.
	core3.StartUntil("/healthz")
	core1.MustCLI("node", "join", "core3", "--raft-addr", core3.RaftAddr, "--api-addr", core3.APIAddr, "--http-addr", core3.HTTPAddr)
	core3.WaitFor("/readyz")
	edge := mk("edge1", "--join", "http://"+core2.APIAddr, "--role", "edge")
	edge.Start()
	cores := []*atolltest.Server{core1, core2, core3}

	list := core2.MustCLI("node", "list")
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
	core2.MustCLI("site", "create", "shop")
	core2.MustCLI("deploy", dir, "--site", "shop")
	for name, body := range files {
		if _, got := edge.Get("GET", "shop.localhost", "/"+name); got != body {
			t.Fatalf("edge /%s: got %q, want %q", name, got, body)
		}
	}

	// Kill -9 the leader while readers hit the edge; writes resume.
	leader := leaderOf(t, edge, cores)
	var failed, served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, _, err := edge.Fetch(ctx, "GET", "shop.localhost", fmt.Sprintf("/p/%d.html", i%20))
			cancel()
			if err != nil {
				failed.Add(1)
				continue
			}
			if resp.StatusCode != 200 {
				failed.Add(1)
			} else {
				served.Add(1)
			}
		}
	})
	killed := time.Now()
	leader.Kill(syscall.SIGKILL)
	var alive *atolltest.Server
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
		o, _, code := alive.CLI("deploy", dir, "--site", "shop", "--api", leader.APIAddr+","+alive.APIAddr)
		if code == 0 {
			out = o
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("no deploy succeeded within 30s of the leader's death")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("leader %s killed; a deploy through %s succeeded %s later", leader.ID, alive.ID, time.Since(killed).Round(time.Millisecond))
	if !strings.Contains(out, "1 uploaded") {
		t.Errorf("redeploy after failover:\n%s\nwant exactly one upload", out)
	}
	// Keep reading a little after the deploy: 20 more reads.
	for after := served.Load() + failed.Load(); served.Load()+failed.Load() < after+20; {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d edge reads failed with one core node down", failed.Load(), failed.Load()+served.Load())
	}
	if _, got := edge.Get("GET", "shop.localhost", "/"); got != "<h1>v2</h1>" {
		t.Errorf("edge after failover: %q, want v2", got)
	}

	// The old leader restarts and catches up.
	leader.Bootstrap = false
	leader.Start()
	if _, got := leader.Get("GET", "shop.localhost", "/"); got != "<h1>v2</h1>" {
		t.Errorf("restarted %s serves %q, want v2", leader.ID, got)
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
	other.MustCLI("node", "drain", victim.ID)
	other.MustCLI("node", "remove", victim.ID)
	victim.Kill(syscall.SIGKILL)
	status, rep := other.API("POST", "/v1/repair", token, "", nil)
	if status != 200 || rep["under_replicated"].(float64) != 0 || rep["missing"].(float64) != 0 || rep["referenced"].(float64) != 22 {
		t.Errorf("repair after drain+remove: %d %v, want 22 referenced, none under-replicated or missing", status, rep)
	}
	st := other.MustCLI("status")
	if !strings.Contains(st, "0 under-replicated, 0 missing") || strings.Contains(st, victim.ID) {
		t.Errorf("status after remove:\n%s\nwant no under-replicated or missing blobs and no %s", st, victim.ID)
	}
	for name, body := range files {
		if _, got := edge.Get("GET", "shop.localhost", "/"+name); got != body {
			t.Errorf("edge /%s after remove: got %q, want %q", name, got, body)
		}
	}
}

// leaderOf asks s which of cores leads.
func leaderOf(t *testing.T, s *atolltest.Server, cores []*atolltest.Server) *atolltest.Server {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		_, st := s.API("GET", "/v1/status", s.Token(), "", nil)
		for _, c := range cores {
			if st["leader_id"] == c.ID {
				return c
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no leader known")
	return nil
}
