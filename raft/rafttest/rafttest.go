// Package rafttest opens real raft stores for the tests of the packages
// above raft (builder, node): a single-node cluster in t.TempDir() with
// test timings, bootstrapped and leading before it is returned, and closed
// when the test ends. Tests then exercise the FSM's own rules instead of a
// stand-in that could drift from them.
//
// It must never be imported by production code, and it offers no way
// around the log: everything a test writes goes through Store.Apply.
package rafttest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/raft"
)

// TB is what this package needs of a test. *testing.T and *testing.B
// have it; so can an Example, which has no testing.TB, by keeping its own
// temp dirs and cleanups. Fatalf must not return.
type TB interface {
	Helper()
	TempDir() string
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// Config returns a loopback configuration for server id with its data in
// a fresh t.TempDir() and the short timings of hashicorp/raft's own test
// harness (a single node cannot lose its leadership to anyone, so short
// timeouts only make the election quick). It logs nothing.
func Config(t TB, id string) raft.Config {
	t.Helper()
	cfg := raft.DefaultConfig()
	cfg.ID = id
	cfg.Dir = t.TempDir()
	cfg.BindAddr = "127.0.0.1:0"
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 50 * time.Millisecond
	cfg.LeaderLeaseTimeout = 50 * time.Millisecond
	cfg.CommitTimeout = 5 * time.Millisecond
	cfg.TransportTimeout = 2 * time.Second
	return cfg
}

// Open starts a bootstrapped single-node store with Config(t, "n1"),
// waits until it leads, and closes it when the test ends. Its
// AppliedIndex moves once more by itself, for the leader's no-op entry;
// after the test's first command it moves only with the test's commands.
func Open(t TB) *raft.Store {
	t.Helper()
	cfg := Config(t, "n1")
	cfg.Bootstrap = true
	s, err := raft.Open(cfg)
	if err != nil {
		t.Fatalf("rafttest: open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The only voter knows a leader once it has become the leader itself.
	if err := s.WaitForLeader(ctx); err != nil {
		t.Fatalf("rafttest: store %s did not lead (state %s): %v", s.ID(), s.State(), err)
	}
	return s
}

// Apply applies cmds in order and fails the test on the first error.
func Apply(t TB, s *raft.Store, cmds ...raft.Command) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range cmds {
		if err := s.Apply(ctx, c); err != nil {
			t.Fatalf("rafttest: apply %T: %v", c, err)
		}
	}
}

// Dump renders everything the FSM shows to readers (sites and their
// domains, deploys and their manifests, certificates without keys, nodes,
// the admin token hash and the deploy tokens), one line per fact, in a
// stable order: two dumps are equal exactly when no reader could tell the
// states apart. Tests compare a dump before and after a request to assert
// that it changed nothing, even when the FSM judged (and rejected) a
// command.
func Dump(t TB, f *raft.FSM) string {
	t.Helper()
	var b strings.Builder
	if err := dumpSites(&b, f); err != nil {
		t.Fatalf("rafttest: dump sites: %v", err)
	}
	nodes, err := f.Nodes()
	if err != nil {
		t.Fatalf("rafttest: dump nodes: %v", err)
	}
	fmt.Fprintf(&b, "nodes %+v\nreplicas %d\nadmin %q\n", nodes, f.Replicas(), f.AdminTokenHash())
	tokens, err := f.Tokens()
	if err != nil {
		t.Fatalf("rafttest: dump tokens: %v", err)
	}
	for _, tok := range tokens {
		byHash, err := f.TokenByHash(tok.Hash)
		fmt.Fprintf(&b, "token %+v\n  by hash -> %s %v\n", tok, byHash.ID, err)
	}
	return b.String()
}

func dumpSites(b *strings.Builder, f *raft.FSM) error {
	sites, err := f.Sites()
	if err != nil {
		return err
	}
	for _, s := range sites {
		fmt.Fprintf(b, "site %+v\n", s)
		for _, d := range s.Domains {
			got, err := f.SiteByDomain(d)
			fmt.Fprintf(b, "  domain %s -> %s %v\n", d, got.Name, err)
		}
		certs, err := f.Certs(s.Name)
		if err != nil {
			return err
		}
		for _, c := range certs {
			fmt.Fprintf(b, "  cert %s not after %s updated %s\n", c.Domain, c.NotAfter, c.Updated)
		}
		deploys, err := f.Deploys(s.Name)
		if err != nil {
			return err
		}
		for _, d := range deploys {
			fmt.Fprintf(b, "  deploy %+v\n", d)
			if err := f.Files(d.ID, func(file atoll.File) error {
				_, err := fmt.Fprintf(b, "    %s %s\n", file.Path, file.Hash)
				return err
			}); err != nil {
				return err
			}
		}
	}
	return nil
}
