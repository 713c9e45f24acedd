package raft

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// A crash while hashicorp/raft persists a snapshot leaves "<name>.tmp/";
// Open removes it and keeps the finished snapshots.
func TestUnfinishedSnapshotsAreRemoved(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"2-10-100.tmp/state.bin", "2-10-100.tmp/meta.json", "2-8-90/state.bin", "2-8-90/meta.json"} {
		p := filepath.Join(dir, "snapshots", f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := removeUnfinishedSnapshots(dir, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshots", "2-10-100.tmp")); !os.IsNotExist(err) {
		t.Errorf("unfinished snapshot still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshots", "2-8-90", "state.bin")); err != nil {
		t.Errorf("finished snapshot removed: %v", err)
	}
	if err := removeUnfinishedSnapshots(t.TempDir(), slog.New(slog.DiscardHandler)); err != nil {
		t.Errorf("no snapshots folder: %v", err)
	}
}
