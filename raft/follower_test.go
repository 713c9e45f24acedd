package raft

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/atoll-hosting/atoll"

	hraft "github.com/hashicorp/raft"
)

func openFollower(t *testing.T) *Store {
	t.Helper()
	f, err := OpenFollower(testConfig(t, "fed1", t.TempDir()))
	if err != nil {
		t.Fatalf("OpenFollower: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// feedAll streams everything src has applied into f, frame by frame as a
// feeder would, with frames of at most max entries.
func feedAll(t *testing.T, src, f *Store, max int) {
	t.Helper()
	for f.AppliedIndex() < src.AppliedIndex() {
		prev, entries, err := src.FeedFrom(f.AppliedIndex(), max, 1<<20)
		if err != nil {
			t.Fatalf("FeedFrom %d: %v", f.AppliedIndex(), err)
		}
		if err := f.ApplyFeed(Feed{Prev: prev, Entries: entries, Commit: src.AppliedIndex(), LeaderID: src.ID(), LeaderAddr: src.Addr()}); err != nil {
			t.Fatalf("ApplyFeed after %d: %v", prev.Index, err)
		}
	}
}

// TestFollowerFedFromStore: a fed edge fed the leader's log, in small
// frames, holds the leader's state and names its leader; its writes fail
// with ErrNotLeader (the node forwards them) and it is in no
// configuration.
func TestFollowerFedFromStore(t *testing.T) {
	src := singleNode(t, t.TempDir())
	mustApply(t, src, seedCommands()...)
	f := openFollower(t)
	feedAll(t, src, f, 3)

	if got, want := f.AppliedIndex(), src.AppliedIndex(); got != want {
		t.Fatalf("applied %d, want %d", got, want)
	}
	want, _ := src.Sites()
	got, err := f.Sites()
	if err != nil || len(got) != len(want) {
		t.Fatalf("Sites: %v, %d sites, want %d", err, len(got), len(want))
	}
	if got := f.LeaderID(); got != "n1" {
		t.Errorf("LeaderID %q, want n1", got)
	}
	if f.IsLeader() || f.State() != StateFed || f.CommitIndex() < src.AppliedIndex() {
		t.Errorf("IsLeader %v, State %q, CommitIndex %d", f.IsLeader(), f.State(), f.CommitIndex())
	}
	if err := f.Apply(context.Background(), SetReplicas{N: 2}); !errors.Is(err, ErrNotLeader) {
		t.Errorf("Apply on a fed edge: %v, want ErrNotLeader", err)
	}
	if servers, err := f.Servers(); err != nil || len(servers) != 0 {
		t.Errorf("Servers: %v, %v, want none", servers, err)
	}
	if err := f.WaitApplied(ctxT(t, 5e9), src.AppliedIndex()); err != nil {
		t.Errorf("WaitApplied: %v", err)
	}
}

// TestApplyFeedRefusesWhatDoesNotContinue: a frame with a gap, a lower
// term, or that starts after another entry than the one the fed edge
// holds is refused whole and changes nothing.
func TestApplyFeedRefusesWhatDoesNotContinue(t *testing.T) {
	cmd := func(c Command) []byte {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	site := func(name string) []byte { return cmd(CreateSite{Name: name, Created: t0}) }
	entry := func(i, term uint64, data []byte) FeedEntry {
		return FeedEntry{Index: i, Term: term, Type: uint8(hraft.LogCommand), Data: data}
	}
	f := openFollower(t)
	if err := f.ApplyFeed(Feed{Entries: []FeedEntry{entry(1, 2, site("a")), entry(2, 2, site("b"))}}); err != nil {
		t.Fatalf("first frame: %v", err)
	}
	tests := []struct {
		name string
		feed Feed
	}{
		{"gap", Feed{Prev: IndexTerm{2, 2}, Entries: []FeedEntry{entry(3, 2, site("c")), entry(5, 2, site("d"))}}},
		{"first entry not the next", Feed{Prev: IndexTerm{2, 2}, Entries: []FeedEntry{entry(4, 2, site("c"))}}},
		{"lower term", Feed{Prev: IndexTerm{2, 2}, Entries: []FeedEntry{entry(3, 3, site("c")), entry(4, 1, site("d"))}}},
		{"term below prev", Feed{Prev: IndexTerm{2, 2}, Entries: []FeedEntry{entry(3, 1, site("c"))}}},
		{"prev index not held", Feed{Prev: IndexTerm{1, 2}, Entries: []FeedEntry{entry(2, 2, site("c"))}}},
		{"prev term differs", Feed{Prev: IndexTerm{2, 3}, Entries: []FeedEntry{entry(3, 3, site("c"))}}},
		{"keep-alive at another index", Feed{Prev: IndexTerm{5, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.ApplyFeed(tt.feed)
			if !errors.Is(err, ErrFeedMismatch) {
				t.Fatalf("ApplyFeed: %v, want ErrFeedMismatch", err)
			}
			if got := f.AppliedIndex(); got != 2 {
				t.Errorf("applied %d after a refused frame, want 2", got)
			}
			if _, err := f.Site("c"); err == nil {
				t.Error("site c exists after a refused frame")
			}
		})
	}
	if err := f.ApplyFeed(Feed{Prev: IndexTerm{2, 2}, Entries: []FeedEntry{entry(3, 3, site("c"))}}); err != nil {
		t.Fatalf("continuing frame: %v", err)
	}
	if _, err := f.Site("c"); err != nil {
		t.Errorf("site c after the continuing frame: %v", err)
	}
}

// TestFeedFromCompactedAndRestore: after a snapshot compacted the
// feeder's log, FeedFrom an index before it is ErrCompacted; the fed edge
// restores the feeder's state and streams on from its index.
func TestFeedFromCompactedAndRestore(t *testing.T) {
	cfg := testConfig(t, "n1", t.TempDir())
	cfg.Bootstrap = true
	cfg.TrailingLogs = 1
	src := openStore(t, cfg)
	waitLeader(t, src)
	mustApply(t, src, seedCommands()...)
	if err := src.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := src.FeedFrom(1, 10, 1<<20); !errors.Is(err, ErrCompacted) {
		t.Fatalf("FeedFrom 1 after compaction: %v, want ErrCompacted", err)
	}
	f := openFollower(t)
	b, err := src.Backup()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := b.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := f.RestoreFeed(bytes.NewReader(buf.Bytes()[:buf.Len()/2])); err == nil {
		t.Fatal("RestoreFeed of half a snapshot succeeded")
	}
	if f.AppliedIndex() != 0 {
		t.Fatalf("applied %d after a refused restore", f.AppliedIndex())
	}
	if err := f.RestoreFeed(&buf); err != nil {
		t.Fatalf("RestoreFeed: %v", err)
	}
	mustApply(t, src, SetReplicas{N: 2})
	feedAll(t, src, f, 10)
	if got := f.Replicas(); got != 2 {
		t.Errorf("replicas %d after the stream, want 2", got)
	}
}

// TestFollowerDirIsMarked: only a folder OpenFollower made is a fed edge's
// (a Raft member's FSM without its log, as a crash at its first start
// leaves it, is not), and OpenFollower refuses a Raft member's folder.
func TestFollowerDirIsMarked(t *testing.T) {
	member := t.TempDir()
	fsm, err := OpenFSM(member)
	if err != nil {
		t.Fatal(err)
	}
	fsm.Close()
	if IsFollowerDir(member) {
		t.Fatal("a folder with an FSM and no Raft log counts as a fed edge's")
	}

	fed := t.TempDir()
	f, err := OpenFollower(testConfig(t, "fed1", fed))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !IsFollowerDir(fed) {
		t.Fatal("the folder OpenFollower made does not count as a fed edge's")
	}

	if err := os.WriteFile(filepath.Join(member, "raft.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFollower(testConfig(t, "fed2", member)); !errors.Is(err, atoll.ErrInvalid) {
		t.Fatalf("OpenFollower of a Raft member's folder: %v, want ErrInvalid", err)
	}
}
