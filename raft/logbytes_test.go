package raft

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// TestSnapshotOnLogBytes: with the entry threshold and the interval far
// away, commands past SnapshotBytes make the node take a snapshot on its
// own within seconds, and the count starts again.
func TestSnapshotOnLogBytes(t *testing.T) {
	cfg := testConfig(t, "n1", t.TempDir())
	cfg.Bootstrap = true
	cfg.SnapshotThreshold = 1 << 20
	cfg.SnapshotInterval = time.Hour
	cfg.SnapshotBytes = 4 << 10
	s := openStore(t, cfg)
	waitLeader(t, s)
	lastSnapshot := func() uint64 {
		i, _ := strconv.ParseUint(s.raft.Stats()["last_snapshot_index"], 10, 64)
		return i
	}
	if got := lastSnapshot(); got != 0 {
		t.Fatalf("a snapshot at index %d before any command", got)
	}
	for i := 0; s.FSM.LogBytesSinceSnapshot() < cfg.SnapshotBytes; i++ {
		mustApply(t, s, CreateSite{Name: fmt.Sprintf("site-%03d", i)})
	}
	ctx := ctxT(t, 10*time.Second)
	for lastSnapshot() == 0 {
		if ctx.Err() != nil {
			t.Fatalf("no snapshot after %d bytes of commands (bound %d)", s.FSM.LogBytesSinceSnapshot(), cfg.SnapshotBytes)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := s.FSM.LogBytesSinceSnapshot(); got >= cfg.SnapshotBytes {
		t.Fatalf("%d bytes counted since the snapshot, want fewer than %d", got, cfg.SnapshotBytes)
	}
}
