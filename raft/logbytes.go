package raft

import (
	"errors"
	"time"

	hraft "github.com/hashicorp/raft"
)

// The log between two snapshots is bounded by bytes as well as entries.
// hashicorp/raft snapshots once SnapshotThreshold entries have been
// written since the last one, checked every SnapshotInterval (2 minutes):
// at the bulk path's rate (some 5 MB of commands a second) that left
// hundreds of MiB of log between two checks, and raft.db, which bbolt
// never shrinks, kept that size for good, its pages mapped in the node's
// memory (1 GiB of raft.db after building 100,000 sites). So the FSM
// counts the bytes of the commands it applies, each snapshot starts the
// count again, and a Store asks for a snapshot as soon as the count passes
// Config.SnapshotBytes: the log then holds at most about SnapshotBytes
// plus TrailingLogs entries.

// logBytesCheck is how often a Store compares the count with its bound.
const logBytesCheck = time.Second

// countLogBytes adds the commands of logs to the bytes applied since the
// last snapshot.
func (f *FSM) countLogBytes(logs []*hraft.Log) {
	var n uint64
	for _, l := range logs {
		n += uint64(len(l.Data))
	}
	f.logBytes.Add(n)
}

// LogBytesSinceSnapshot returns the bytes of commands applied since the
// last snapshot began (or since the FSM opened).
func (f *FSM) LogBytesSinceSnapshot() uint64 { return f.logBytes.Load() }

// snapshotOnBytes takes a snapshot whenever the commands applied since the
// last one pass s.cfg.SnapshotBytes, until s closes.
func (s *Store) snapshotOnBytes() {
	t := time.NewTicker(logBytesCheck)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		if s.FSM.LogBytesSinceSnapshot() < s.cfg.SnapshotBytes {
			continue
		}
		err := s.raft.Snapshot().Error()
		switch {
		case err == nil:
			s.log.Info("snapshot taken: the log since the last one passed its byte bound", "bound", s.cfg.SnapshotBytes)
		case errors.Is(err, hraft.ErrNothingNewToSnapshot), errors.Is(err, hraft.ErrRaftShutdown):
		default:
			s.log.Warn("snapshot on the log's byte bound failed; retrying", "err", err)
		}
	}
}
