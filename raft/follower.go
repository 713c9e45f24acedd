package raft

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/internal/durable"

	hraft "github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// Sentinel errors of the feed (docs/FANOUT.md).
var (
	// ErrCompacted: the entry a stream asked to start after is no longer
	// in the feeder's log; the fed edge loads a snapshot instead.
	ErrCompacted = errors.New("log compacted past the requested index")
	// ErrNotFeeder: this node has no Raft log to feed from (a fed edge).
	ErrNotFeeder = errors.New("this node is a fed edge: it does not feed others")
	// ErrFeedMismatch: a frame does not continue this node's state.
	ErrFeedMismatch = errors.New("feed frame does not continue the applied log")
)

// IndexTerm identifies a log entry; the zero value is "before the first".
type IndexTerm struct {
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
}

// FeedEntry is one committed log entry as a feeder streams it: the
// fields of hashicorp/raft's Log that the FSM reads.
type FeedEntry struct {
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	Type  uint8  `json:"type"` // hashicorp/raft's LogType
	Data  []byte `json:"data,omitempty"`
}

// Feed is what a fed edge applies: the entries after Prev (none in a
// keep-alive) and what the feeder knows of the cluster.
type Feed struct {
	Prev    IndexTerm
	Entries []FeedEntry
	// Commit is the feeder's applied index: every entry up to it is
	// committed.
	Commit               uint64
	LeaderID, LeaderAddr string
}

// follower is the part of a Store opened by OpenFollower: no
// hashicorp/raft, the leader as the feeder last told it.
type follower struct {
	mu                   sync.Mutex
	leaderID, leaderAddr string
	commit               uint64
	contact              time.Time
	apply                sync.Mutex // one ApplyFeed or RestoreFeed at a time
}

// fedMarker is the file OpenFollower writes, durably, before it opens the
// FSM: what makes a folder a fed edge's. A Raft member's folder never has
// one, and its FSM without its log (a crash between the two at the first
// start) does not make it a fed edge.
const fedMarker = "fed"

// IsFollowerDir reports whether dir holds the state of a fed edge: the fed
// marker and no Raft log.
func IsFollowerDir(dir string) bool {
	_, ferr := os.Stat(filepath.Join(dir, fedMarker))
	_, rerr := os.Stat(filepath.Join(dir, "raft.db"))
	return ferr == nil && errors.Is(rerr, os.ErrNotExist)
}

// OpenFollower opens cfg.Dir's FSM as a fed edge's Store: no
// hashicorp/raft, no transport, no Raft log. Its state moves only through
// ApplyFeed and RestoreFeed, which the node calls with what its feeder
// streams. The read side is a Store's: the FSM reads, Changed,
// AppliedIndex, WaitApplied, LeaderID (the leader its feeder names).
// Writes (Apply, ApplyAll, membership changes, Barrier, restores) fail
// with ErrNotLeader, so that the caller forwards them to the leader;
// Servers is empty: a fed edge is in no Raft configuration.
func OpenFollower(cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if cfg.ID == "" || cfg.Dir == "" {
		return nil, fmt.Errorf("%w: raft config: empty ID or Dir", atoll.ErrInvalid)
	}
	logger := slog.New(slog.DiscardHandler)
	if cfg.Logger != nil {
		logger = cfg.Logger.With("component", "raft", "id", cfg.ID)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("raft dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "raft.db")); err == nil {
		return nil, fmt.Errorf("%w: %s holds a Raft member's log: it cannot open as a fed edge", atoll.ErrInvalid, cfg.Dir)
	}
	if err := durable.WriteFile(filepath.Join(cfg.Dir, fedMarker), []byte("fed edge state: no Raft log\n"), 0o644); err != nil {
		return nil, fmt.Errorf("raft dir: %w", err)
	}
	fsm, err := OpenFSM(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s := &Store{FSM: fsm, cfg: cfg, log: logger, done: make(chan struct{}), fed: &follower{}}
	fsm.onFailure = func(err error) {
		logger.Error("fed state storage failed: this node applies nothing more until restarted", "err", err)
	}
	s.existing = fsm.AppliedIndex() > 0
	logger.Info("fed edge state opened", "applied_index", fsm.AppliedIndex())
	return s, nil
}

// Fed reports whether s was opened by OpenFollower.
func (s *Store) Fed() bool { return s.fed != nil }

// appliedEntry returns the index and term of the last entry in the state.
func (f *FSM) appliedEntry() (IndexTerm, error) {
	var it indexTerm
	err := f.view(func(tx *bolt.Tx) error {
		it = getApplied(tx)
		return nil
	})
	return IndexTerm{it.index, it.term}, err
}

// CheckFeed verifies that entries continue the entry prev, as
// AppendEntries' prevLogIndex/prevLogTerm do: the first is prev's
// successor, indexes are consecutive, terms never decrease.
func CheckFeed(prev IndexTerm, entries []FeedEntry) error {
	last := prev
	for _, e := range entries {
		if e.Index != last.Index+1 {
			return fmt.Errorf("%w: entry %d after %d", ErrFeedMismatch, e.Index, last.Index)
		}
		if e.Term < last.Term {
			return fmt.Errorf("%w: entry %d has term %d after term %d", ErrFeedMismatch, e.Index, e.Term, last.Term)
		}
		last = IndexTerm{e.Index, e.Term}
	}
	return nil
}

// ApplyFeed applies a frame from the feeder on a fed edge: its Prev must
// be exactly the last entry in the state (index and term), its entries
// must pass CheckFeed; then they go through FSM.ApplyBatch (one bbolt
// transaction with the applied index, invariant 1) and the leader and
// commit index it names are recorded. A frame that does not continue the
// state is refused whole (ErrFeedMismatch) and changes nothing.
func (s *Store) ApplyFeed(fd Feed) error {
	if s.fed == nil {
		return fmt.Errorf("%w: ApplyFeed on a Raft member", ErrNotFeeder)
	}
	s.fed.apply.Lock()
	defer s.fed.apply.Unlock()
	have, err := s.FSM.appliedEntry()
	if err != nil {
		return err
	}
	if fd.Prev != have {
		return fmt.Errorf("%w: frame starts after entry %d (term %d), this node holds up to %d (term %d)",
			ErrFeedMismatch, fd.Prev.Index, fd.Prev.Term, have.Index, have.Term)
	}
	if err := CheckFeed(fd.Prev, fd.Entries); err != nil {
		return err
	}
	if len(fd.Entries) > 0 {
		logs := make([]*hraft.Log, len(fd.Entries))
		for i, e := range fd.Entries {
			logs[i] = &hraft.Log{Index: e.Index, Term: e.Term, Type: hraft.LogType(e.Type), Data: e.Data}
		}
		s.FSM.ApplyBatch(logs) // rejections are answers to the proposer, not errors here
		if err := s.FSM.StorageFailed(); err != nil {
			return err
		}
	}
	s.noteFeeder(fd.Commit, fd.LeaderID, fd.LeaderAddr)
	return nil
}

// noteFeeder records what a frame said of the cluster, waking the
// leader's waiters when the leader changed.
func (s *Store) noteFeeder(commit uint64, leaderID, leaderAddr string) {
	s.fed.mu.Lock()
	changed := s.fed.leaderID != leaderID
	s.fed.leaderID, s.fed.leaderAddr = leaderID, leaderAddr
	s.fed.commit = max(s.fed.commit, commit)
	s.fed.contact = time.Now()
	s.fed.mu.Unlock()
	if changed {
		s.leader.notify()
	}
}

// RestoreFeed replaces a fed edge's state with a snapshot in the format
// of FSM.Snapshot (GET /v1/peer/snapshot of a feeder): checked whole by
// FSM.Restore before the old state is replaced.
func (s *Store) RestoreFeed(r io.Reader) error {
	if s.fed == nil {
		return fmt.Errorf("%w: RestoreFeed on a Raft member", ErrNotFeeder)
	}
	s.fed.apply.Lock()
	defer s.fed.apply.Unlock()
	return s.FSM.Restore(io.NopCloser(r))
}

// FeedFrom returns, on a Raft member, the committed entries after index
// after that this node has applied, at most maxEntries and maxBytes of
// data (always at least one entry when there is one), with the
// (index, term) of the entry at after. It fails with ErrCompacted when
// that entry is no longer in the log (load a snapshot instead) and with
// ErrNotFeeder on a fed edge.
func (s *Store) FeedFrom(after uint64, maxEntries, maxBytes int) (IndexTerm, []FeedEntry, error) {
	if s.fed != nil {
		return IndexTerm{}, nil, ErrNotFeeder
	}
	prev, err := s.entryAt(after)
	if err != nil {
		return IndexTerm{}, nil, err
	}
	upTo := s.AppliedIndex()
	var out []FeedEntry
	size := 0
	for i := after + 1; i <= upTo && len(out) < maxEntries; i++ {
		var l hraft.Log
		if err := s.logs.GetLog(i, &l); err != nil {
			if errors.Is(err, hraft.ErrLogNotFound) {
				return IndexTerm{}, nil, fmt.Errorf("%w: entry %d", ErrCompacted, i)
			}
			return IndexTerm{}, nil, fmt.Errorf("read log entry %d: %w", i, err)
		}
		if len(out) > 0 && size+len(l.Data) > maxBytes {
			break
		}
		size += len(l.Data)
		out = append(out, FeedEntry{Index: l.Index, Term: l.Term, Type: uint8(l.Type), Data: l.Data})
	}
	return prev, out, nil
}

// entryAt returns the (index, term) of the entry at index, from the log,
// or from the FSM's state when it is the last entry applied there.
func (s *Store) entryAt(index uint64) (IndexTerm, error) {
	if index == 0 {
		return IndexTerm{}, nil
	}
	var l hraft.Log
	err := s.logs.GetLog(index, &l)
	if err == nil {
		return IndexTerm{l.Index, l.Term}, nil
	}
	if !errors.Is(err, hraft.ErrLogNotFound) {
		return IndexTerm{}, fmt.Errorf("read log entry %d: %w", index, err)
	}
	if have, ferr := s.FSM.appliedEntry(); ferr == nil && have.Index == index {
		return have, nil
	}
	return IndexTerm{}, fmt.Errorf("%w: entry %d", ErrCompacted, index)
}

// FeedLeader returns the leader's id and raft address, for frames.
func (s *Store) FeedLeader() (id, addr string) { return s.LeaderID(), s.LeaderAddr() }
