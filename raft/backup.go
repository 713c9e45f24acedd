package raft

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/internal/countio"

	hraft "github.com/hashicorp/raft"
	"github.com/klauspost/compress/zstd"
	bolt "go.etcd.io/bbolt"
)

// Backups: `atoll snapshot save` and `atoll snapshot restore`.
//
// A backup is a snapshot in the FSM's own format (snapshot.go): header with
// the applied index of the copied state, then zstd of one bbolt read
// transaction's Tx.WriteTo. Saving one is FSM.Backup, on any node; it
// reflects that node's applied index.
//
// Restoring one is Store.RestoreBackup, on the leader, through
// hashicorp/raft's user restore (Raft.Restore): raft writes the data as a
// new snapshot at an index above its whole log, has the FSM restore it, and
// ships it to every follower as an InstallSnapshot, so the whole cluster's
// metadata goes back to the backup's. Before handing it over, the backup is
// checked completely (header, zstd checksum, bbolt consistency, the same
// checks FSM.Restore makes) and rewritten:
//
//   - Its applied index becomes the index raft gives the restore snapshot.
//     Raft places a user restore at max(last log index, meta.Index)+1, so
//     with writes paused (Store.writes) and meta.Index above the last log
//     index the index is known before the data is written, and the state,
//     the snapshot header and raft's snapshot all name the same entry.
//     Keeping the backup's old, lower index instead would break two things:
//     Open's catch-up (a node that crashed after storing the received
//     snapshot but before restoring it would compare its newer fsm.db with
//     the older header and keep the pre-restore state, rqlite 2747 again),
//     and AppliedIndex, which would lag the commit index until the next
//     write and keep /readyz failing.
//   - The cluster's own tables stay as they are now: the node table (it
//     must match the Raft configuration, which a user restore keeps),
//     the replication factor, the admin token hash, and the deploy tokens
//     (minus those whose site the backup lacks). Access control is not
//     rolled back: a token revoked after the backup was taken stays
//     revoked.
//   - The feature level stays the cluster's (keepFeatureLevel): a backup
//     at a lower level restores at the current one; one at a higher level
//     is refused.

// restoreGap is how far above the last log index a restore snapshot is
// placed (see RestoreBackup): room for an entry raft itself might append
// between reading the index and the restore (the no-op of a re-election).
const restoreGap = 16

// Backup is a consistent copy of the state being read: one bbolt read
// transaction, held until Close. Like a raft snapshot it keeps bbolt from
// reusing the pages freed meanwhile, so stream it and close it.
type Backup struct {
	snap *fsmSnapshot
}

// Backup begins a backup of the current state. It returns at once; WriteTo
// does the copy.
func (f *FSM) Backup() (*Backup, error) {
	s, err := f.Snapshot()
	if err != nil {
		return nil, err
	}
	return &Backup{snap: s.(*fsmSnapshot)}, nil
}

// AppliedIndex is the index of the last log entry the backed-up state
// contains.
func (b *Backup) AppliedIndex() uint64 { return b.snap.applied.index }

// WriteTo writes the backup in the snapshot format and returns the bytes
// written.
func (b *Backup) WriteTo(w io.Writer) (int64, error) {
	cw := &countio.Writer{W: w}
	err := b.snap.writeTo(cw)
	return cw.N, err
}

// Close ends the read transaction. It is safe to call twice.
func (b *Backup) Close() { b.snap.Release() }

// BackupInfo describes a backup file.
type BackupInfo struct {
	AppliedIndex uint64 // of the backed-up state
	StateBytes   int64  // of the decompressed state (the bbolt file)
}

// VerifyBackup reads a whole backup and checks its header and that its
// data decompresses with a valid checksum (zstd frames carry one), without
// writing anything. Errors about the content wrap ErrInvalid. The bbolt
// file inside is checked only by a restore, which unpacks it.
func VerifyBackup(r io.Reader) (BackupInfo, error) {
	it, br, err := peekSnapshotIndex(r)
	if err != nil {
		return BackupInfo{}, notSnapshot(err)
	}
	br.Discard(snapshotHeader)
	dec, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return BackupInfo{}, err
	}
	defer dec.Close()
	n, err := io.Copy(io.Discard, dec)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("%w: snapshot data is corrupt or truncated: %v", atoll.ErrInvalid, err)
	}
	if n == 0 {
		return BackupInfo{}, fmt.Errorf("%w: snapshot holds no state", atoll.ErrInvalid)
	}
	return BackupInfo{AppliedIndex: it.index, StateBytes: n}, nil
}

// RestoreResult describes a completed RestoreBackup.
type RestoreResult struct {
	// BackupIndex is the applied index recorded in the backup: the state
	// is now what it was at that index on the node that saved it.
	BackupIndex uint64
	// Index is the log index the restored state stands at in this
	// cluster; every node that has applied it holds the restored state.
	Index   uint64
	Sites   int
	Deploys int
	// TokensKept counts the deploy tokens carried over from the state
	// before the restore (see RestoreBackup).
	TokensKept int
}

// RestoreBackup replaces the whole cluster's metadata with a backup made
// by Backup.WriteTo, keeping the node table, the replication factor, the
// admin token and the deploy tokens of sites the backup holds (see the top
// of this file for why). It must run on the leader, else it fails with
// ErrNotLeader.
//
// The backup is checked completely before anything changes; a corrupt,
// truncated or foreign file fails with an error wrapping ErrInvalid and
// leaves the state untouched. Then writes pause (Apply and membership
// changes wait) while raft installs the backup as a new snapshot, restores
// it here and ships it to the followers; RestoreBackup returns once a
// majority has it. If leadership is lost during that step the outcome is
// unknown: check the state and run it again.
//
// It needs free space in the raft directory for about three copies of the
// state (the unpacked backup, the new snapshot, the FSM's restore file).
// One restore runs at a time; another fails with ErrConflict.
func (s *Store) RestoreBackup(ctx context.Context, r io.Reader) (RestoreResult, error) {
	if s.closed.Load() {
		return RestoreResult{}, ErrClosed
	}
	if !s.restoring.TryLock() {
		return RestoreResult{}, fmt.Errorf("%w: another restore is running", atoll.ErrConflict)
	}
	defer s.restoring.Unlock()
	if !s.IsLeader() {
		return RestoreResult{}, s.notLeader(nil)
	}
	removeBackupLeftovers(s.cfg.Dir)

	start := time.Now()
	up, err := unpackBackup(s.cfg.Dir, r)
	if err != nil {
		return RestoreResult{}, err
	}
	defer up.remove()
	s.log.Info("backup unpacked and checked", "backup_index", up.header.index, "bytes", up.size, "took", time.Since(start))

	s.writes.Lock()
	defer s.writes.Unlock()
	if !s.IsLeader() {
		return RestoreResult{}, s.notLeader(nil)
	}
	at := indexTerm{s.raft.LastIndex() + restoreGap + 1, s.raft.CurrentTerm()}
	res, err := up.rebase(s.FSM, at)
	if err != nil {
		return RestoreResult{}, err
	}
	snap, size, err := up.encode(at)
	if err != nil {
		return RestoreResult{}, err
	}
	defer snap.Close()
	if err := ctx.Err(); err != nil {
		return RestoreResult{}, fmt.Errorf("restore not started: %w", err) // nobody waits for it
	}

	meta := &hraft.SnapshotMeta{Version: hraft.SnapshotVersionMax, Index: at.index - 1, Term: at.term, Size: size}
	if err := s.raft.Restore(meta, snap, s.cfg.ApplyTimeout); err != nil {
		return RestoreResult{}, fmt.Errorf("raft restore: %w", s.mapErr(err))
	}
	if got := s.lastSnapshotIndex(); got != at.index {
		// Harmless (the state's index is then below raft's: AppliedIndex
		// lags until the next write) but unexpected: say so.
		s.log.Warn("restore snapshot landed at another index than planned", "planned", at.index, "raft", got)
	}
	res.BackupIndex, res.Index = up.header.index, at.index
	s.log.Info("backup restored", "backup_index", res.BackupIndex, "index", res.Index,
		"sites", res.Sites, "deploys", res.Deploys, "took", time.Since(start))
	return res, nil
}

func (s *Store) lastSnapshotIndex() uint64 {
	i, _ := strconv.ParseUint(s.raft.Stats()["last_snapshot_index"], 10, 64)
	return i
}

// backupPrefix names RestoreBackup's temporary files in the raft directory.
const backupPrefix = "backup-restore-"

// removeBackupLeftovers deletes temporary files a crashed restore left.
func removeBackupLeftovers(dir string) {
	old, _ := filepath.Glob(filepath.Join(dir, backupPrefix+"*"))
	for _, p := range old {
		os.Remove(p)
	}
}

// unpacked is a backup decompressed into a bbolt file and checked.
type unpacked struct {
	dir    string
	path   string
	db     *bolt.DB
	header indexTerm
	size   int64 // of the decompressed state
}

// unpackBackup decompresses a backup into a temporary bbolt file in dir
// and checks it: header, zstd checksum, bbolt's consistency check, the base
// buckets, and that the state's applied index is the header's. Problems
// with the content wrap ErrInvalid; failures to read r or to write the disk
// come back as they are.
func unpackBackup(dir string, r io.Reader) (_ *unpacked, err error) {
	src := &errReader{r: r}
	it, br, err := peekSnapshotIndex(src)
	if err != nil {
		if src.err != nil {
			return nil, fmt.Errorf("read snapshot: %w", src.err)
		}
		return nil, notSnapshot(err)
	}
	br.Discard(snapshotHeader)

	f, err := os.CreateTemp(dir, backupPrefix+"*.db")
	if err != nil {
		return nil, err
	}
	u := &unpacked{dir: dir, path: f.Name(), header: it}
	defer func() {
		if err != nil {
			u.remove()
		}
	}()
	dec, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
	if err != nil {
		f.Close()
		return nil, err
	}
	dst := &errWriter{w: f}
	u.size, err = io.Copy(dst, dec)
	dec.Close()
	if cerr := f.Close(); err == nil && cerr != nil {
		return nil, fmt.Errorf("write unpacked snapshot: %w", cerr)
	}
	switch {
	case src.err != nil:
		return nil, fmt.Errorf("read snapshot: %w", src.err)
	case dst.err != nil:
		return nil, fmt.Errorf("write unpacked snapshot: %w", dst.err)
	case err != nil:
		return nil, fmt.Errorf("%w: snapshot data is corrupt or truncated: %v", atoll.ErrInvalid, err)
	case u.size == 0:
		return nil, fmt.Errorf("%w: snapshot holds no state", atoll.ErrInvalid)
	}

	u.db, err = bolt.Open(u.path, 0o600, &bolt.Options{
		Timeout: 5 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: snapshot does not hold an Atoll state file: %v", atoll.ErrInvalid, err)
	}
	if err := checkState(u.db, it); err != nil {
		var newer *NewerStateError
		if errors.As(err, &newer) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: snapshot state: %v", atoll.ErrInvalid, err)
	}
	return u, nil
}

// notSnapshot is the error for a file whose header is refused: a
// *NewerStateError as it is, anything else as not a snapshot at all.
func notSnapshot(err error) error {
	var newer *NewerStateError
	if errors.As(err, &newer) {
		return err
	}
	return fmt.Errorf("%w: not an Atoll snapshot: %v", atoll.ErrInvalid, err)
}

// checkState runs bbolt's consistency check on a state file and the checks
// FSM.Restore makes. A damaged file can make bbolt panic rather than
// return an error: that is a failed check too.
func checkState(db *bolt.DB, want indexTerm) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("damaged state file: %v", p)
		}
	}()
	return db.View(func(tx *bolt.Tx) error {
		var first error
		for cerr := range tx.Check() { // drain it: the checker stops only at the end
			if first == nil {
				first = cerr
			}
		}
		if first != nil {
			return first
		}
		return checkRestorable(tx, want)
	})
}

// rebase makes the unpacked state this cluster's: the live node table,
// replication factor, admin token and deploy tokens (of sites the backup
// has) replace the backup's, and its applied index becomes at.
func (u *unpacked) rebase(live *FSM, at indexTerm) (RestoreResult, error) {
	kept, err := readKept(live)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("read current state: %w", err)
	}
	var res RestoreResult
	err = u.db.Update(func(tx *bolt.Tx) error {
		if err := keepFeatureLevel(tx, kept.level); err != nil {
			return err
		}
		if err := replaceBucket(tx, bucketNodes, kept.nodes); err != nil {
			return err
		}
		res.Sites = tx.Bucket(bucketSites).Stats().KeyN
		res.Deploys = tx.Bucket(bucketDeploys).Stats().KeyN
		var err error
		if res.TokensKept, err = keepTokens(tx, kept.tokens); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		for k, v := range map[string][]byte{string(keyAdminToken): kept.admin, string(keyReplicas): kept.replicas} {
			if len(v) == 0 {
				continue // unset here: keep the backup's
			}
			if err := meta.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return putApplied(tx, at)
	})
	var fe *atoll.FeatureError
	if errors.As(err, &fe) {
		return RestoreResult{}, err
	}
	if err != nil {
		return RestoreResult{}, fmt.Errorf("prepare restore: %w", err)
	}
	return res, nil
}

// keepFeatureLevel gives the unpacked state the live feature level, live.
// A backup from an older cluster (a lower level, or none: LevelBase) is
// valid at a higher level, since every level only adds to the formats; the
// level is never lowered, because entries of the live level may follow in
// the log and nodes that know them must not see a state that says they
// are not allowed yet. A backup saved at a level above live is refused: its
// records may hold what the cluster's older nodes would read wrong, and a
// restore must not raise the level past what every node knows (only the
// leader does, once every node reports it).
func keepFeatureLevel(tx *bolt.Tx, live int) error {
	saved := featureLevel(tx)
	if saved > live {
		return &atoll.FeatureError{
			Feature: fmt.Sprintf("restoring a snapshot saved at feature level %d", saved),
			Need:    saved, Have: live,
		}
	}
	if saved == live {
		return nil
	}
	return tx.Bucket(bucketMeta).Put(keyFeatureLevel, []byte(strconv.Itoa(live)))
}

// kv is one key and value of a bucket, copied out of its transaction.
type kv struct{ k, v []byte }

// keptState is what a restore takes from the live state rather than from
// the backup.
type keptState struct {
	nodes, tokens   []kv
	admin, replicas []byte
	level           int
}

// readKept copies out of the live FSM what a restore keeps.
func readKept(live *FSM) (keptState, error) {
	var st keptState
	err := live.view(func(tx *bolt.Tx) error {
		copyAll := func(bucket []byte, out *[]kv) error {
			b := tx.Bucket(bucket)
			if b == nil {
				return nil
			}
			return b.ForEach(func(k, v []byte) error {
				*out = append(*out, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
				return nil
			})
		}
		if err := copyAll(bucketNodes, &st.nodes); err != nil {
			return err
		}
		if err := copyAll(bucketTokens, &st.tokens); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		st.admin = append([]byte(nil), meta.Get(keyAdminToken)...)
		st.replicas = append([]byte(nil), meta.Get(keyReplicas)...)
		st.level = featureLevel(tx)
		return nil
	})
	return st, err
}

// replaceBucket empties bucket name (creating it if needed) and fills it
// with entries.
func replaceBucket(tx *bolt.Tx, name []byte, entries []kv) error {
	b, err := freshBucket(tx, name)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := b.Put(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}

func freshBucket(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
		return nil, err
	}
	return tx.CreateBucket(name)
}

// keepTokens replaces the backup's deploy tokens and their hash index with
// the live ones whose site the backup has, and counts them.
func keepTokens(tx *bolt.Tx, tokens []kv) (int, error) {
	tb, err := freshBucket(tx, bucketTokens)
	if err != nil {
		return 0, err
	}
	hb, err := freshBucket(tx, bucketTokenHashes)
	if err != nil {
		return 0, err
	}
	sites, kept := tx.Bucket(bucketSites), 0
	for _, e := range tokens {
		var t atoll.Token
		if err := json.Unmarshal(e.v, &t); err != nil {
			return 0, fmt.Errorf("decode token %q: %w", e.k, err)
		}
		if sites.Get([]byte(t.Site)) == nil {
			continue // its site is not in the backup: nothing to deploy to
		}
		if err := tb.Put(e.k, e.v); err != nil {
			return 0, err
		}
		if err := hb.Put([]byte(t.Hash), e.k); err != nil {
			return 0, err
		}
		kept++
	}
	return kept, nil
}

// encode writes the unpacked state as a snapshot (header at, zstd data)
// into a temporary file and returns it, rewound, with its size.
func (u *unpacked) encode(at indexTerm) (*os.File, int64, error) {
	f, err := os.CreateTemp(u.dir, backupPrefix+"*.snap")
	if err != nil {
		return nil, 0, err
	}
	fail := func(err error) (*os.File, int64, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, 0, fmt.Errorf("encode restore snapshot: %w", err)
	}
	err = u.db.View(func(tx *bolt.Tx) error {
		return (&fsmSnapshot{tx: tx, applied: at}).writeTo(f)
	})
	if err != nil {
		return fail(err)
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return fail(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	os.Remove(f.Name()) // unlinked: gone with the last descriptor, also after a crash
	return f, size, nil
}

func (u *unpacked) remove() {
	if u.db != nil {
		u.db.Close()
	}
	os.Remove(u.path)
}

// errReader and errWriter remember the first error of the reader or writer
// they wrap, so that a failure of the source or of the disk is not taken
// for a corrupt snapshot.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}
