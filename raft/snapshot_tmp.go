package raft

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// removeUnfinishedSnapshots deletes the snapshots a crash left half
// written. hashicorp/raft's FileSnapshotStore writes a snapshot into
// "snapshots/<name>.tmp/" and renames it once complete, so a crash while
// it persists leaves that folder; the store then skips it forever ("found
// temporary snapshot") without removing it, and each can be as big as the
// state. Nothing else writes there while the store is closed, so at Open
// every ".tmp" folder is garbage.
func removeUnfinishedSnapshots(dir string, log *slog.Logger) error {
	entries, err := os.ReadDir(filepath.Join(dir, "snapshots"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, "snapshots", e.Name())); err != nil {
			return err
		}
		log.Info("removed an unfinished snapshot", "name", e.Name())
	}
	return nil
}
