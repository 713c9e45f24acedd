package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/raft"
)

// Metadata backups (`atoll snapshot save|restore`; wire shapes in
// builder/snapshot.go, the mechanics in raft/backup.go).
//
// GET /v1/snapshot streams the answering node's state: any node serves it,
// from one bbolt read transaction, and says whose state at which applied
// index it is in its headers. On a follower that may lag the leader by the
// replication delay. The stream is the Raft snapshot format (header, zstd,
// checksummed), so a client can check a saved file is whole. If the copy
// fails midway the connection is broken off, never ended cleanly: a short
// file cannot pass for a complete one. A download holds a read transaction
// for its duration, like a Raft snapshot: a Raft snapshot restore on this
// node waits for it, and the API's minimum rate (limits.go) bounds how long
// a slow client can make it last.
//
// POST /v1/snapshot/restore runs on the leader (a follower proxies it
// there) and replaces the whole cluster's metadata with the uploaded file,
// keeping the node table, admin token, replication factor and deploy
// tokens. The file is checked whole before anything changes: a corrupt,
// truncated or foreign file is a 400 and the state stays as it was. Writes
// pause while the restore runs. Blobs are not in the snapshot; the repair
// pass is woken so the census reports any blob the restored deploys need
// and no node holds.

func (n *Node) handleSnapshotSave(w http.ResponseWriter, r *http.Request) {
	b, err := n.store.Backup()
	if err != nil {
		w.Header().Set("Retry-After", "1")
		builder.WriteError(w, http.StatusServiceUnavailable, "snapshot: "+err.Error())
		return
	}
	defer b.Close()
	idx := b.AppliedIndex()
	h := w.Header()
	h.Set("Content-Type", atoll.SnapshotContentType)
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="atoll-%s-%d.snap"`, n.cfg.ID, idx))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set(atoll.HeaderNode, n.cfg.ID)
	h.Set(atoll.HeaderAppliedIndex, strconv.FormatUint(idx, 10))
	start := time.Now()
	size, err := b.WriteTo(stopWriter{ctx: n.ctx, w: w})
	if err != nil {
		n.log.Warn("snapshot download broken off", "applied_index", idx, "bytes", size, "err", err)
		panic(http.ErrAbortHandler) // the client sees a broken stream, not a short file
	}
	n.log.Info("snapshot saved", "applied_index", idx, "bytes", size, "took", time.Since(start))
}

// stopWriter fails writes once ctx ends, so a download does not hold the
// state's read transaction (and the node's shutdown) any longer.
type stopWriter struct {
	ctx context.Context
	w   io.Writer
}

func (s stopWriter) Write(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, fmt.Errorf("node stopping: %w", err)
	}
	return s.w.Write(p)
}

func (n *Node) handleSnapshotRestore(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	res, err := n.store.RestoreBackup(r.Context(), r.Body)
	if err != nil {
		status := http.StatusInternalServerError
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, atoll.ErrInvalid):
			status = http.StatusBadRequest
		case errors.Is(err, atoll.ErrConflict):
			status = http.StatusConflict
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrClosed):
			w.Header().Set("Retry-After", "1")
			status = http.StatusServiceUnavailable
		case errors.Is(err, syscall.ENOSPC):
			status = http.StatusInsufficientStorage
		case errors.As(err, &mbe):
			status = http.StatusRequestEntityTooLarge
		case r.Context().Err() != nil:
			status = 499 // the client went away; nobody reads this
		}
		if status >= 500 {
			n.log.Error("snapshot restore failed", "err", err)
		} else {
			n.log.Warn("snapshot restore refused", "status", status, "err", err)
		}
		builder.WriteError(w, status, "restore: "+err.Error())
		return
	}
	n.repair.Soon()
	builder.WriteJSON(w, http.StatusOK, atoll.SnapshotRestored{
		BackupIndex:  res.BackupIndex,
		AppliedIndex: res.Index,
		Sites:        res.Sites,
		Deploys:      res.Deploys,
		TokensKept:   res.TokensKept,
		Took:         time.Since(start).Round(time.Millisecond).String(),
	})
}
