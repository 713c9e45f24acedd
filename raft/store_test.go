package raft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
)

// testLogger sends warnings from the store and hashicorp/raft to t.Log
// until the test ends (raft goroutines may outlive a failed test).
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	w := &testLogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testLogWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

// testConfig returns a config for a loopback node with test timings (as in
// hashicorp/raft's testing.go, a little slower for -race on 2 cores).
func testConfig(t *testing.T, id, dir string) Config {
	cfg := DefaultConfig()
	cfg.ID = id
	cfg.Dir = dir
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Logger = testLogger(t)
	cfg.HeartbeatTimeout = 100 * time.Millisecond
	cfg.ElectionTimeout = 100 * time.Millisecond
	cfg.LeaderLeaseTimeout = 100 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.ApplyTimeout = 10 * time.Second
	cfg.TransportTimeout = 2 * time.Second
	return cfg
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func openStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open %s: %v", cfg.ID, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// singleNode opens a bootstrapped one-node cluster and waits until it leads.
func singleNode(t *testing.T, dir string) *Store {
	t.Helper()
	cfg := testConfig(t, "n1", dir)
	cfg.Bootstrap = true
	s := openStore(t, cfg)
	waitLeader(t, s)
	return s
}

func waitLeader(t *testing.T, s *Store) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	for !s.IsLeader() {
		if ctx.Err() != nil {
			t.Fatalf("%s did not become leader (state %s)", s.ID(), s.State())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustApply(t *testing.T, s *Store, cmds ...Command) {
	t.Helper()
	for _, c := range cmds {
		if err := s.Apply(ctxT(t, 10*time.Second), c); err != nil {
			t.Fatalf("Apply %T: %v", c, err)
		}
	}
}

// seedCommands is the scenario of seed() as a command list.
func seedCommands() []Command {
	var cmds []Command
	ready := func(site, id string, files []atoll.File) {
		cmds = append(cmds, CreateDeploy{ID: id, Site: site, Files: len(files), Created: t0})
		for _, b := range BatchFiles(id, files) {
			cmds = append(cmds, b)
		}
		cmds = append(cmds, MarkReady{Deploy: id, Bytes: int64(len(files))})
	}
	cmds = append(cmds,
		CreateSite{Name: "blog", Domains: []string{"blog.example.com"}, Created: t0},
		CreateSite{Name: "shop", Domains: []string{"shop.example.com"}, Created: t0},
	)
	ready("blog", "live1", manifest(3))
	cmds = append(cmds, Publish{Deploy: "live1", At: t0})
	ready("blog", "rdy1", manifest(2))
	return append(cmds,
		CreateDeploy{ID: "up1", Site: "blog", Files: 2, Created: t0},
		AddFiles{Deploy: "up1", Files: manifest(1)},
		SetAdminToken{Hash: hashA},
		PutNode{Node: atoll.Node{ID: "n1", Role: atoll.RoleCore, RaftAddr: "10.0.0.1:7000", Joined: t0}},
		CreateToken{ID: "tok1", Site: "blog", Name: "ci", Hash: hashOf("secret-blog"), Created: t0},
		CreateToken{ID: "tok2", Site: "shop", Hash: hashOf("secret-shop"), Created: t0},
	)
}

func TestStoreSingleNode(t *testing.T) {
	s := singleNode(t, t.TempDir())
	if got := s.State(); got != "Leader" {
		t.Errorf("State = %q, want Leader", got)
	}
	if s.LeaderID() != "n1" || s.LeaderAddr() != s.Addr() {
		t.Errorf("leader = %q at %q, want n1 at %q", s.LeaderID(), s.LeaderAddr(), s.Addr())
	}
	servers, err := s.Servers()
	if err != nil {
		t.Fatal(err)
	}
	if want := []Server{{ID: "n1", Addr: s.Addr(), Voter: true}}; fmt.Sprint(servers) != fmt.Sprint(want) {
		t.Errorf("Servers = %+v, want %+v", servers, want)
	}

	mustApply(t, s, seedCommands()...)
	if d, err := s.Deploy("rdy1"); err != nil || d.State != atoll.StateReady {
		t.Errorf("Deploy(rdy1) = %+v, %v", d, err)
	}
	if got := s.AdminTokenHash(); got != hashA {
		t.Errorf("AdminTokenHash = %q", got)
	}

	tests := []struct {
		name string
		cmd  Command
		want error
	}{
		{"FSM rejection comes back wrapped", CreateSite{Name: "blog", Created: t0.Add(time.Hour)}, atoll.ErrExists},
		{"invalid command", CreateSite{Name: "Not Valid"}, atoll.ErrInvalid},
		{"nil command", nil, atoll.ErrInvalid},
		{"oversized command", AddFiles{Deploy: "up1", Files: manifest(6000)}, atoll.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Apply(ctxT(t, 5*time.Second), tt.cmd)
			if !errors.Is(err, tt.want) {
				t.Errorf("Apply = %v, want %v", err, tt.want)
			}
		})
	}

	t.Run("expired context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := s.Apply(ctx, DeleteSite{Name: "shop"})
		if err == nil {
			// The command may still make it: that is the "outcome unknown" case.
			t.Log("apply with a cancelled context went through")
		} else if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Apply with cancelled ctx = %v", err)
		}
	})

	if err := s.Snapshot(); err != nil {
		t.Errorf("Snapshot: %v", err)
	}
	if err := s.WaitApplied(ctxT(t, 5*time.Second), s.CommitIndex()); err != nil {
		t.Errorf("WaitApplied(commit index): %v", err)
	}

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Apply(context.Background(), DeleteSite{Name: "blog"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Site("blog"); !errors.Is(err, ErrClosed) {
		t.Errorf("read after Close = %v, want ErrClosed", err)
	}
	if got := s.State(); got != "Shutdown" {
		t.Errorf("State after Close = %q", got)
	}
}

func TestOpenValidatesConfig(t *testing.T) {
	base := testConfig(t, "n1", t.TempDir())
	tests := []struct {
		name   string
		change func(*Config)
	}{
		{"no id", func(c *Config) { c.ID = "" }},
		{"no dir", func(c *Config) { c.Dir = "" }},
		{"lease longer than heartbeat", func(c *Config) { c.LeaderLeaseTimeout = time.Hour }},
		{"unadvertisable bind", func(c *Config) { c.BindAddr = "0.0.0.0:0" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.change(&cfg)
			if s, err := Open(cfg); err == nil {
				s.Close()
				t.Fatal("Open accepted it")
			} else {
				t.Logf("rejected: %v", err)
			}
		})
	}
	// A failed Open releases everything: the same dir opens fine afterwards.
	s := openStore(t, base)
	s.Close()
}

// TestStoreRestartReplay closes a node and opens it again: the state is the
// same, replaying the log applies nothing twice, and writes go on.
func TestStoreRestartReplay(t *testing.T) {
	dir := t.TempDir()
	s := singleNode(t, dir)
	mustApply(t, s, seedCommands()...)
	mustApply(t, s, Publish{Deploy: "rdy1", At: t0.Add(time.Hour)}) // live1 superseded
	want := dump(t, s.FSM)
	applied := s.FSM.AppliedIndex()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = singleNode(t, dir) // Bootstrap again: must be ignored, the dir has state
	// The whole log is replayed (no snapshot yet): every command again.
	if err := s.WaitApplied(ctxT(t, 10*time.Second), applied); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitApplied(ctxT(t, 10*time.Second), s.CommitIndex()); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, s.FSM); got != want {
		t.Fatalf("state after restart:\nwant %s\ngot  %s", want, got)
	}
	if d, _ := s.Deploy("live1"); d.State != atoll.StateSuperseded || d.Received != 3 {
		t.Errorf("live1 after replay = %+v, want superseded with 3 files", d)
	}
	servers, _ := s.Servers()
	if len(servers) != 1 {
		t.Errorf("Servers = %+v, want just n1", servers)
	}
	mustApply(t, s, DeleteSite{Name: "shop"})
	if _, err := s.Site("shop"); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("write after restart not applied: %v", err)
	}
}

// TestStoreStartupRestoresWhenFSMBehind puts back an old fsm.db under a
// newer snapshot, the state a crash leaves when a received snapshot was made
// durable but not yet restored (rqlite 2747). Raft alone would resume after
// the snapshot's index and never apply what lies between: Open must restore
// the snapshot first.
func TestStoreStartupRestoresWhenFSMBehind(t *testing.T) {
	dir := t.TempDir()
	s := singleNode(t, dir)
	mustApply(t, s, CreateSite{Name: "early", Created: t0})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(filepath.Join(dir, fsmFile))
	if err != nil {
		t.Fatal(err)
	}

	s = singleNode(t, dir)
	mustApply(t, s, seedCommands()...)
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	want := dump(t, s.FSM)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fsmFile), old, 0o600); err != nil {
		t.Fatal(err)
	}

	s = singleNode(t, dir)
	if err := s.WaitApplied(ctxT(t, 10*time.Second), s.CommitIndex()); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, s.FSM); got != want {
		t.Fatalf("state after startup restore:\nwant %s\ngot  %s", want, got)
	}
}

// TestStoreManifest100k sends a 100k-file manifest through the log in
// batches and checks that every entry lands, and that the state survives a
// snapshot and a restart.
func TestStoreManifest100k(t *testing.T) {
	dir := t.TempDir()
	s := singleNode(t, dir)
	files := manifest100k()
	mustApply(t, s,
		CreateSite{Name: "big", Created: t0},
		CreateDeploy{ID: "big1", Site: "big", Files: len(files), Created: t0},
	)
	batches := BatchFiles("big1", files)
	start := time.Now()
	for _, b := range batches {
		enc, _ := Encode(b)
		if len(enc) > MaxBatchBytes {
			t.Fatalf("batch of %d bytes", len(enc))
		}
		mustApply(t, s, b)
	}
	t.Logf("%d files in %d entries applied in %v", len(files), len(batches), time.Since(start))
	mustApply(t, s, MarkReady{Deploy: "big1", Bytes: 1 << 30}, Publish{Deploy: "big1", At: t0})

	n := 0
	if err := s.Files("big1", func(atoll.File) error { n++; return nil }); err != nil || n != len(files) {
		t.Fatalf("Files listed %d, %v; want %d", n, err, len(files))
	}
	check := func(s *Store) {
		t.Helper()
		d, err := s.Deploy("big1")
		if err != nil || d.Received != len(files) || d.State != atoll.StatePublished {
			t.Fatalf("deploy = %+v, %v", d, err)
		}
		for _, i := range []int{0, 4242, len(files) - 1} {
			if got, err := s.File("big1", files[i].Path); err != nil || got != files[i].Hash {
				t.Errorf("File(%s) = %q, %v", files[i].Path, got, err)
			}
		}
	}
	check(s)
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = singleNode(t, dir)
	check(s)
}

func TestHCLogRouting(t *testing.T) {
	var buf bytes.Buffer
	l := newHCLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	l.Named("transport").Info("dropped")
	l.With("peer", "n2").Warn("heartbeat slow", "took", time.Second)
	l.Error("failed", "error", io.EOF)
	out := buf.String()
	for _, want := range []string{"heartbeat slow", "module=raft", "peer=n2", "took=1s", "level=ERROR", "error=EOF"} {
		if !bytes.Contains(buf.Bytes(), []byte(want)) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if bytes.Contains(buf.Bytes(), []byte("dropped")) {
		t.Errorf("info record was forwarded:\n%s", out)
	}
	newHCLogger(nil).Error("goes nowhere")
}
