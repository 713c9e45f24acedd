package raft

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atoll-hosting/atoll"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"
)

// Config configures a Store. Zero durations and counts take the values of
// DefaultConfig.
type Config struct {
	ID            string // raft server id, unique in the cluster, stable across restarts
	Dir           string // holds fsm.db, raft.db and snapshots/
	BindAddr      string // TCP address the raft transport listens on
	AdvertiseAddr string // address peers dial; default: the bound address
	Bootstrap     bool   // start a new one-voter cluster if Dir holds no raft state
	Logger        *slog.Logger

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration

	// SnapshotThreshold is how many log entries since the last snapshot make
	// raft take a new one (checked every SnapshotInterval); TrailingLogs is
	// how many entries it keeps after a snapshot for followers that lag.
	//
	// Sizing: a 100k-file manifest is about 40 AddFiles entries of at most
	// MaxBatchBytes. A follower that needs a snapshot must ship and restore
	// it before the leader has written TrailingLogs more entries, or it loops
	// forever asking for a new one (Consul 9609). With 10240 trailing
	// entries, ~250 such 100k-file deploys can land while a follower
	// installs a snapshot; a bbolt file with millions of entries ships and
	// restores in seconds on a LAN. A threshold of 4096 keeps the log (and
	// raft.db, which bbolt never shrinks) bounded between snapshots.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	SnapshotInterval  time.Duration
	// SnapshotBytes bounds the log by bytes too: once the entries applied
	// since the last snapshot hold this many bytes of commands, the node
	// takes a snapshot within a second (logbytes.go), whatever the count
	// and SnapshotInterval say.
	SnapshotBytes  uint64
	SnapshotRetain int // snapshots kept on disk

	ApplyTimeout     time.Duration // bound on Apply and membership changes when ctx has no earlier deadline
	TransportTimeout time.Duration // raft RPC I/O timeout
	MaxPool          int           // pooled connections per peer

	// TLS, when set, puts the transport on mutual TLS (see tls.go):
	// Certificates[0] is this node's certificate, presented both when
	// accepting and when dialing; ClientCAs is the cluster CA, which every
	// peer's certificate must chain to (client certificates are required).
	// Nil keeps plain TCP.
	TLS *tls.Config
}

// DefaultConfig returns production settings: hashicorp/raft's timing
// defaults and the log sizing explained on Config, except CommitTimeout.
//
// CommitTimeout: followers (and edges, which serve from their own FSM)
// learn that an entry is committed only from the leader's next
// AppendEntries, which hashicorp/raft sends after a random 1-2x
// CommitTimeout when no other write follows. At its default of 50 ms a
// publish reached every node after 120-170 ms; 5 ms costs one small RPC
// per follower every 5-10 ms while idle and brings propagation to about
// one round trip after the commit (bench/RESULTS.md).
func DefaultConfig() Config {
	return Config{
		BindAddr:           "127.0.0.1:7000",
		HeartbeatTimeout:   time.Second,
		ElectionTimeout:    time.Second,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		SnapshotThreshold:  4096,
		TrailingLogs:       10240,
		SnapshotInterval:   2 * time.Minute,
		SnapshotBytes:      64 << 20,
		SnapshotRetain:     2,
		ApplyTimeout:       10 * time.Second,
		TransportTimeout:   10 * time.Second,
		MaxPool:            3,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	set := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	set(&c.HeartbeatTimeout, d.HeartbeatTimeout)
	set(&c.ElectionTimeout, d.ElectionTimeout)
	set(&c.LeaderLeaseTimeout, d.LeaderLeaseTimeout)
	set(&c.CommitTimeout, d.CommitTimeout)
	set(&c.SnapshotInterval, d.SnapshotInterval)
	set(&c.ApplyTimeout, d.ApplyTimeout)
	set(&c.TransportTimeout, d.TransportTimeout)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	if c.SnapshotBytes == 0 {
		c.SnapshotBytes = d.SnapshotBytes
	}
	if c.SnapshotRetain == 0 {
		c.SnapshotRetain = d.SnapshotRetain
	}
	if c.MaxPool == 0 {
		c.MaxPool = d.MaxPool
	}
	return c
}

func (c Config) raftConfig() *hraft.Config {
	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(c.ID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = c.CommitTimeout
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.TrailingLogs = c.TrailingLogs
	rc.SnapshotInterval = c.SnapshotInterval
	// The FSM is persistent: raft must not restore the newest snapshot over
	// it at every start. Open restores only when the FSM is behind.
	rc.NoSnapshotRestoreOnStart = true
	// Let concurrent Apply calls share log appends and FSM batches.
	rc.BatchApplyCh = true
	return rc
}

// Store is this node's member of the Raft cluster: hashicorp/raft with
// raft-boltdb for the log, file snapshots, a TCP (or mutual TLS) transport,
// and the FSM, whose read methods it embeds. Writes go through Apply on the
// leader.
//
// The FSM methods hashicorp/raft calls (ApplyBatch, Restore) are promoted
// too; calling them on a Store bypasses the log: never do.
type Store struct {
	*FSM

	cfg   Config
	log   *slog.Logger
	raft  *hraft.Raft
	trans *hraft.NetworkTransport
	bolt  *raftboltdb.BoltStore
	logs  hraft.LogStore // bolt behind a cache

	existing bool // the data dir held Raft state when the store opened

	// fed is set on a fed edge's Store (OpenFollower, follower.go): raft,
	// trans, bolt and logs are nil then, and every method that would use
	// them answers from fed or fails with ErrNotLeader.
	fed *follower

	// writes is held for reading by Apply and membership changes, and for
	// writing by RestoreBackup, which pauses them (backup.go); restoring
	// lets one restore run at a time.
	writes    sync.RWMutex
	restoring sync.Mutex

	leader leaderWatch // wakes waiters when the known leader changes

	closed atomic.Bool
	done   chan struct{} // closed by Close: wakes every waiter
	// handedOver is set once a storage failure has started a leadership
	// transfer (storageFailed).
	handedOver atomic.Bool
	closeOnce  sync.Once
	closeErr   error
}

// Open starts the node's raft member from cfg.Dir: it opens the FSM, brings
// it up to the newest snapshot if it is behind (see DESIGN.md), opens the
// log and the snapshot store, starts the transport on BindAddr and raft.
// With Bootstrap and no raft state in Dir it bootstraps a one-voter cluster
// of itself; otherwise it waits to be added by a leader (or rejoins the
// cluster its state records).
func Open(cfg Config) (s *Store, err error) {
	cfg = cfg.withDefaults()
	switch {
	case cfg.ID == "":
		return nil, fmt.Errorf("%w: raft config: empty ID", atoll.ErrInvalid)
	case cfg.Dir == "":
		return nil, fmt.Errorf("%w: raft config: empty Dir", atoll.ErrInvalid)
	case cfg.BindAddr == "":
		return nil, fmt.Errorf("%w: raft config: empty BindAddr", atoll.ErrInvalid)
	}
	logger := slog.New(slog.DiscardHandler)
	var hlog hclog.Logger = hclog.NewNullLogger()
	if cfg.Logger != nil {
		logger = cfg.Logger.With("component", "raft", "id", cfg.ID)
		hlog = newHCLogger(logger)
	}
	rc := cfg.raftConfig()
	rc.Logger = hlog
	if err := hraft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("%w: raft config: %v", atoll.ErrInvalid, err)
	}

	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()
	st := &Store{cfg: cfg, log: logger, done: make(chan struct{})}
	snaps, err := st.openState(hlog, &closers)
	if err != nil {
		return nil, err
	}
	if st.trans, err = newTransport(cfg, hlog); err != nil {
		return nil, err
	}
	closers = append(closers, st.trans.Close)
	if st.existing, err = hraft.HasExistingState(st.logs, st.bolt, snaps); err != nil {
		return nil, fmt.Errorf("raft state: %w", err)
	}
	if st.raft, err = hraft.NewRaft(rc, st.FSM, st.logs, st.bolt, snaps, st.trans); err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	closers = append(closers, func() error { return st.raft.Shutdown().Error() })
	if cfg.Bootstrap && !st.existing {
		boot := hraft.Configuration{Servers: []hraft.Server{{
			Suffrage: hraft.Voter,
			ID:       rc.LocalID,
			Address:  st.trans.LocalAddr(),
		}}}
		if err := st.raft.BootstrapCluster(boot).Error(); err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
		logger.Info("bootstrapped new cluster", "addr", st.trans.LocalAddr())
	}
	logger.Info("raft started", "addr", st.trans.LocalAddr(), "applied_index", st.FSM.AppliedIndex(), "existing_state", st.existing)
	st.leader.start(st.raft, st.done)
	go st.snapshotOnBytes()
	return st, nil
}

// openState opens what is on disk: the FSM (brought up to the newest
// snapshot if it is behind), the snapshot store and the Raft log behind
// its cache. Each opened part's Close is added to closers.
func (s *Store) openState(hlog hclog.Logger, closers *[]func() error) (hraft.SnapshotStore, error) {
	dir := s.cfg.Dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("raft dir: %w", err)
	}
	fsm, err := OpenFSM(dir)
	if err != nil {
		return nil, err
	}
	*closers = append(*closers, fsm.Close)
	fsm.onFailure = func(err error) {
		if errors.Is(err, ErrNeedsUpgrade) {
			s.log.Error("the raft log holds an entry this binary does not know: this node applies nothing more and refuses writes until it runs a newer atoll", "err", err)
			return
		}
		s.log.Error("raft state storage failed: this node applies nothing more and refuses writes until restarted", "err", err)
	}
	s.FSM = fsm
	if err := removeUnfinishedSnapshots(dir, s.log); err != nil { // snapshot_tmp.go
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	snaps, err := hraft.NewFileSnapshotStoreWithLogger(dir, s.cfg.SnapshotRetain, hlog.Named("snapshot"))
	if err != nil {
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	if err := catchUpWithSnapshot(fsm, snaps, s.log); err != nil {
		return nil, err
	}
	// The raft log gets the FSM's freelist settings (see openBolt).
	s.bolt, err = raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(dir, "raft.db"),
		BoltOptions: &bolt.Options{
			Timeout:        5 * time.Second,
			NoFreelistSync: true,
			FreelistType:   bolt.FreelistMapType,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("raft log: %w", err)
	}
	*closers = append(*closers, s.bolt.Close)
	s.logs = newLogCache(s.bolt, logCacheEntries, logCacheBytes)
	return snaps, nil
}

// newTransport starts the Raft transport on cfg.BindAddr: plain TCP, or
// mutual TLS when cfg.TLS is set.
func newTransport(cfg Config, hlog hclog.Logger) (*hraft.NetworkTransport, error) {
	var advertise net.Addr
	if cfg.AdvertiseAddr != "" {
		var err error
		if advertise, err = net.ResolveTCPAddr("tcp", cfg.AdvertiseAddr); err != nil {
			return nil, fmt.Errorf("%w: advertise address: %v", atoll.ErrInvalid, err)
		}
	}
	var trans *hraft.NetworkTransport
	var err error
	if cfg.TLS != nil {
		trans, err = newTLSTransport(cfg, advertise, hlog.Named("transport"))
	} else {
		trans, err = hraft.NewTCPTransportWithLogger(cfg.BindAddr, advertise, cfg.MaxPool, cfg.TransportTimeout, hlog.Named("transport"))
	}
	if err != nil {
		return nil, fmt.Errorf("raft transport on %s: %w", cfg.BindAddr, err)
	}
	return trans, nil
}

// catchUpWithSnapshot restores the newest snapshot if the FSM on disk holds
// less than it. hashicorp/raft with NoSnapshotRestoreOnStart takes the
// newest snapshot's index as applied and replays only the log after it, so
// an FSM behind that snapshot (a received snapshot made durable before the
// FSM restore finished, as in rqlite issue 2747) would silently miss the
// entries in between. The decision uses the applied index in the
// snapshot's own header, not the snapshot's raft index: the latter also
// counts entries the FSM never sees (no-ops, barriers).
func catchUpWithSnapshot(fsm *FSM, snaps hraft.SnapshotStore, log *slog.Logger) error {
	list, err := snaps.List()
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	if len(list) == 0 {
		return nil
	}
	newest := list[0] // what raft will start from
	meta, rc, err := snaps.Open(newest.ID)
	if err != nil {
		return fmt.Errorf("open snapshot %s: %w", newest.ID, err)
	}
	it, r, err := peekSnapshotIndex(rc)
	if err != nil {
		rc.Close()
		return fmt.Errorf("snapshot %s: %w", newest.ID, err)
	}
	if fsm.AppliedIndex() >= it.index {
		rc.Close()
		return nil
	}
	log.Warn("fsm behind newest snapshot, restoring",
		"snapshot", meta.ID, "snapshot_index", it.index, "fsm_index", fsm.AppliedIndex())
	start := time.Now()
	if err := fsm.Restore(readCloser{r, rc}); err != nil {
		return fmt.Errorf("restore snapshot %s: %w", newest.ID, err)
	}
	log.Info("restored snapshot", "snapshot", meta.ID, "applied_index", fsm.AppliedIndex(), "took", time.Since(start))
	return nil
}

type readCloser struct {
	r io.Reader
	c io.Closer
}

func (rc readCloser) Read(p []byte) (int, error) { return rc.r.Read(p) }
func (rc readCloser) Close() error               { return rc.c.Close() }

// Addr returns the raft address peers reach this node at.
func (s *Store) Addr() string {
	if s.fed != nil {
		return ""
	}
	return string(s.trans.LocalAddr())
}

// HasState reports whether the data dir already held Raft state (logs,
// a snapshot or a term) when the store opened: false for a brand-new node
// that has neither bootstrapped nor joined.
func (s *Store) HasState() bool { return s.existing }

// ID returns this node's raft server id.
func (s *Store) ID() string { return s.cfg.ID }

// StateFed is State on a fed edge.
const StateFed = "Fed"

// State returns the raft state as hashicorp/raft names it: "Leader",
// "Follower", "Candidate" or "Shutdown"; StateFed on a fed edge.
func (s *Store) State() string {
	if s.fed != nil {
		return StateFed
	}
	return s.raft.State().String()
}

// IsLeader reports whether this node is the leader.
func (s *Store) IsLeader() bool { return s.fed == nil && s.raft.State() == hraft.Leader }

// LeaderID returns the current leader's server id, "" if unknown.
func (s *Store) LeaderID() string {
	_, id := s.leaderWithID()
	return id
}

// leaderWithID is hashicorp/raft's LeaderWithID, or what a fed edge's
// feeder last said.
func (s *Store) leaderWithID() (addr, id string) {
	if s.fed != nil {
		s.fed.mu.Lock()
		defer s.fed.mu.Unlock()
		return s.fed.leaderAddr, s.fed.leaderID
	}
	a, i := s.raft.LeaderWithID()
	return string(a), string(i)
}

// LastContact returns when this node last heard from the leader (zero on
// the leader itself and before any contact).
func (s *Store) LastContact() time.Time {
	if s.fed != nil {
		s.fed.mu.Lock()
		defer s.fed.mu.Unlock()
		return s.fed.contact
	}
	if s.IsLeader() {
		return time.Time{}
	}
	return s.raft.LastContact()
}

// LeaderAddr returns the current leader's raft address, "" if unknown.
func (s *Store) LeaderAddr() string {
	addr, _ := s.leaderWithID()
	return addr
}

// AppliedIndex returns the index up to which this node's state reflects
// the log. Unlike FSM.AppliedIndex it also counts the entries raft handles
// without the FSM (the no-op each new leader writes, barriers), so it
// reaches CommitIndex once the node has caught up: compare it with the
// leader's CommitIndex for readiness.
//
// hashicorp/raft's own applied index moves when entries are handed to the
// FSM goroutine, before they are applied; so it is used only once the FSM
// has applied the last entry at or below it that the FSM sees.
func (s *Store) AppliedIndex() uint64 {
	if s.fed != nil {
		return s.FSM.AppliedIndex() // every entry streamed goes through the FSM
	}
	ra, fa := s.raft.AppliedIndex(), s.FSM.AppliedIndex()
	if fa >= ra || fa >= s.lastFSMEntry(ra, fa) {
		return max(ra, fa)
	}
	return fa
}

// lastFSMEntry returns the index of the last entry in (after, upTo] that
// raft hands to the FSM (a command or a configuration change), or after if
// there is none. If the log no longer has an entry it cannot tell, and
// answers upTo.
func (s *Store) lastFSMEntry(upTo, after uint64) uint64 {
	for i := upTo; i > after; i-- {
		var l hraft.Log
		if err := s.logs.GetLog(i, &l); err != nil {
			return upTo
		}
		if l.Type == hraft.LogCommand || l.Type == hraft.LogConfiguration {
			return i
		}
	}
	return after
}

// CommitIndex returns the highest log index this node knows to be committed.
// On a fed edge it is the highest applied index a feeder reported.
func (s *Store) CommitIndex() uint64 {
	if s.fed != nil {
		s.fed.mu.Lock()
		defer s.fed.mu.Unlock()
		return max(s.fed.commit, s.FSM.AppliedIndex())
	}
	return s.raft.CommitIndex()
}

// backstop bounds how long a Wait method sleeps without a notification. An
// entry the FSM never sees (a no-op or barrier) moves AppliedIndex without
// a state change; the waits re-check at least this often so that they see
// it too.
const backstop = 250 * time.Millisecond

// LeaderChanged returns a channel that is closed the next time this node
// learns of a new leader, or of having none, or when the store closes.
// Wait on it, then call LeaderChanged again; no subscription to cancel.
func (s *Store) LeaderChanged() <-chan struct{} { return s.leader.changed() }

// WaitForLeader blocks until the cluster has a known leader or ctx ends.
func (s *Store) WaitForLeader(ctx context.Context) error {
	return s.waitFor(ctx, func() bool { return s.LeaderID() != "" })
}

// WaitApplied blocks until AppliedIndex reaches index (reads on this node
// then see every write up to that index) or ctx ends.
func (s *Store) WaitApplied(ctx context.Context, index uint64) error {
	return s.waitFor(ctx, func() bool { return s.AppliedIndex() >= index })
}

// Barrier blocks, on the leader, until every entry committed before the
// call is applied to this node's FSM: reads then see the whole committed
// state (after a restart the FSM lags the log until then). Elsewhere it
// returns an error wrapping ErrNotLeader.
func (s *Store) Barrier(ctx context.Context) error {
	if !s.IsLeader() {
		return s.notLeader(nil)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	return s.wait(ctx, s.raft.Barrier(timeLeft(ctx)))
}

// waitFor returns once done() holds, re-checking it whenever the state or
// the leader changes (and at least every backstop).
func (s *Store) waitFor(ctx context.Context, done func() bool) error {
	t := time.NewTimer(backstop)
	defer t.Stop()
	for {
		// Take the channels before checking, so that a change between the
		// check and the select still wakes this waiter.
		changed, leader := s.Changed(), s.LeaderChanged()
		if done() {
			return nil
		}
		if s.closed.Load() {
			return ErrClosed
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return ErrClosed
		case <-changed:
		case <-leader:
		case <-t.C:
			t.Reset(backstop)
		}
	}
}

// Apply replicates cmd and applies it. It must be called on the leader,
// else it returns an error wrapping ErrNotLeader (write to LeaderID's node
// instead). If leadership is lost while the command is in flight the error
// wraps both ErrNotLeader and hraft.ErrLeadershipLost and the outcome is
// unknown: commands are built so that resending the same one is safe. A
// command rejected by the FSM returns its error (ErrInvalid, ErrNotFound,
// ErrExists, ErrConflict). Apply waits at most until ctx's deadline or
// ApplyTimeout, whichever is sooner; when that passes first the outcome is
// unknown too.
func (s *Store) Apply(ctx context.Context, cmd Command) error {
	_, err := s.ApplyIndex(ctx, cmd)
	return err
}

// storageFailed is FSM.StorageFailed for a write on the leader: while the
// FSM cannot store what it applies, this node proposes nothing and, once,
// hands leadership to another voter, if there is one, so that the
// cluster's writes go on there (the caller retries a 503 or 507).
func (s *Store) storageFailed() error {
	err := s.FSM.StorageFailed()
	if err != nil && s.handedOver.CompareAndSwap(false, true) {
		go func() {
			if terr := s.raft.LeadershipTransfer().Error(); terr != nil {
				s.log.Warn("hand over leadership after a storage failure", "err", terr)
			}
		}()
	}
	return err
}

// encodeBounded encodes cmd and refuses it over MaxCommandBytes.
func encodeBounded(cmd Command) ([]byte, error) {
	b, err := Encode(cmd)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxCommandBytes {
		return nil, fmt.Errorf("%w: command %d encodes to %d bytes, limit %d (batch manifests with BatchFiles)",
			atoll.ErrInvalid, cmd.Type(), len(b), MaxCommandBytes)
	}
	return b, nil
}

// ApplyIndex is Apply that also returns the log index of the command, so a
// follower that forwarded it can wait until it has applied that far
// (read-your-writes).
func (s *Store) ApplyIndex(ctx context.Context, cmd Command) (uint64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	b, err := encodeBounded(cmd)
	if err != nil {
		return 0, err
	}
	s.writes.RLock()
	defer s.writes.RUnlock()
	if !s.IsLeader() {
		return 0, s.notLeader(nil)
	}
	if err := s.storageFailed(); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	fut := s.raft.Apply(b, timeLeft(ctx))
	if err := s.wait(ctx, fut); err != nil {
		return 0, err
	}
	if resp, ok := fut.Response().(error); ok {
		return fut.Index(), resp
	}
	return fut.Index(), nil
}

// timeLeft returns how long ctx has left, at least 1ns (0 would mean no
// limit to hashicorp/raft).
func timeLeft(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	return max(time.Until(dl), 1)
}

// wait waits for a raft future or for ctx, and maps raft's errors to this
// package's.
func (s *Store) wait(ctx context.Context, fut hraft.Future) error {
	done := make(chan error, 1)
	go func() { done <- fut.Error() }()
	select {
	case err := <-done:
		return s.mapErr(err)
	case <-ctx.Done():
		return fmt.Errorf("outcome unknown: %w", ctx.Err())
	}
}

func (s *Store) mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, hraft.ErrNotLeader), errors.Is(err, hraft.ErrLeadershipLost),
		errors.Is(err, hraft.ErrLeadershipTransferInProgress):
		return s.notLeader(err)
	case errors.Is(err, hraft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	case errors.Is(err, hraft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return err
}

func (s *Store) notLeader(cause error) error {
	addr, id := s.leaderWithID()
	hint := "leader unknown"
	if id != "" {
		hint = fmt.Sprintf("leader is %s at %s", id, addr)
	}
	if cause != nil {
		return fmt.Errorf("%w (%w; %s)", ErrNotLeader, cause, hint)
	}
	return fmt.Errorf("%w (%s)", ErrNotLeader, hint)
}

// Server is a member of the raft configuration.
type Server struct {
	ID    string `json:"id"`
	Addr  string `json:"addr"`
	Voter bool   `json:"voter"`
}

// Servers returns the latest raft configuration, as this node knows it.
// A fed edge is in no configuration and knows none: empty.
func (s *Store) Servers() ([]Server, error) {
	if s.fed != nil {
		return nil, nil
	}
	fut := s.raft.GetConfiguration()
	if err := fut.Error(); err != nil {
		return nil, s.mapErr(err)
	}
	var out []Server
	for _, srv := range fut.Configuration().Servers {
		out = append(out, Server{ID: string(srv.ID), Addr: string(srv.Address), Voter: srv.Suffrage == hraft.Voter})
	}
	return out, nil
}

// AddVoter adds (or promotes) a voting member. Leader only.
func (s *Store) AddVoter(ctx context.Context, id, addr string) error {
	return s.membership(ctx, func(timeout time.Duration) hraft.Future {
		return s.raft.AddVoter(hraft.ServerID(id), hraft.ServerAddress(addr), 0, timeout)
	})
}

// AddNonvoter adds a member that receives the log but does not vote (an
// edge). Leader only. It gives no "caught up" signal: compare the member's
// AppliedIndex with the leader's CommitIndex.
func (s *Store) AddNonvoter(ctx context.Context, id, addr string) error {
	return s.membership(ctx, func(timeout time.Duration) hraft.Future {
		return s.raft.AddNonvoter(hraft.ServerID(id), hraft.ServerAddress(addr), 0, timeout)
	})
}

// RemoveServer takes a member out of the raft configuration. Leader only.
// To remove the leader itself, prefer LeadershipTransfer first.
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	return s.membership(ctx, func(timeout time.Duration) hraft.Future {
		return s.raft.RemoveServer(hraft.ServerID(id), 0, timeout)
	})
}

func (s *Store) membership(ctx context.Context, change func(time.Duration) hraft.Future) error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.writes.RLock()
	defer s.writes.RUnlock()
	if !s.IsLeader() {
		return s.notLeader(nil)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	return s.wait(ctx, change(timeLeft(ctx)))
}

// LeadershipTransfer asks the leader (this node) to hand leadership to
// another voter and waits for the outcome. Call it before a voter leaves or
// shuts down on purpose.
func (s *Store) LeadershipTransfer() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.fed != nil {
		return s.notLeader(nil)
	}
	return s.mapErr(s.raft.LeadershipTransfer().Error())
}

// Snapshot takes a snapshot now (and compacts the log). Nothing new to
// snapshot is not an error.
func (s *Store) Snapshot() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.fed != nil {
		return nil // no log to compact
	}
	err := s.raft.Snapshot().Error()
	if errors.Is(err, hraft.ErrNothingNewToSnapshot) {
		return nil
	}
	return s.mapErr(err)
}

// closeRaft shuts raft down and closes the transport and the log.
func (s *Store) closeRaft() []error {
	var errs []error
	if err := s.raft.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("shutdown raft: %w", err))
	}
	if err := s.trans.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close transport: %w", err))
	}
	if err := s.bolt.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close raft log: %w", err))
	}
	return errs
}

// Close shuts raft down, then closes the transport, the log and the FSM.
// It does not hand over leadership (see LeadershipTransfer). Calling it
// again returns the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.done)
		var errs []error
		if s.fed == nil {
			s.leader.stop(s.raft)
			errs = append(errs, s.closeRaft()...)
		} else {
			s.leader.finish()
		}
		if err := s.FSM.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close fsm: %w", err))
		}
		s.closeErr = errors.Join(errs...)
		s.log.Info("raft closed")
	})
	return s.closeErr
}
