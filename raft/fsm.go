package raft

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atoll-hosting/atoll"

	hraft "github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// fsmFile is the FSM's bbolt file inside its directory.
const fsmFile = "fsm.db"

// Buckets and keys of the FSM's bbolt file. The names are part of the
// on-disk and snapshot format: never rename them.
var (
	bucketMeta        = []byte("meta")         // keyApplied, keyAdminToken, keyReplicas, keyFeatureLevel
	bucketSites       = []byte("sites")        // name -> Site JSON
	bucketDomains     = []byte("domains")      // custom domain -> site name
	bucketDeploys     = []byte("deploys")      // id -> deployRecord JSON
	bucketSiteDeploys = []byte("site_deploys") // site 0x00 BE(creation index) -> deploy id
	bucketManifests   = []byte("manifests")    // one nested bucket per deploy id: path -> 32 raw hash bytes
	bucketNodes       = []byte("nodes")        // id -> Node JSON
	bucketTokens      = []byte("tokens")       // token id -> Token JSON
	bucketTokenHashes = []byte("token_hashes") // hex SHA-256 of the secret -> token id
	bucketRules       = []byte("rules")        // deploy id -> compiled rules (MarkReady.Rules)
	// The compact manifests of atoll.LevelCompactManifests (manifest.go).
	bucketManifestValues = []byte("manifest_values") // deploy id -> compact manifest
	bucketBlobIDs        = []byte("blob_ids")        // 32 raw hash bytes -> uvarint blob id
	bucketBlobHashes     = []byte("blob_hashes")     // BE(blob id) -> 32 raw hash bytes, uvarint refs

	// baseBuckets are in every FSM file and snapshot, from the first
	// format on; a restored snapshot must hold them.
	baseBuckets = [][]byte{bucketMeta, bucketSites, bucketDomains, bucketDeploys,
		bucketSiteDeploys, bucketManifests, bucketNodes}
	// allBuckets adds those that later versions introduced: openBolt
	// creates them when missing, so a file or snapshot written before they
	// existed opens as an empty table.
	allBuckets = append(baseBuckets[:len(baseBuckets):len(baseBuckets)], bucketTokens, bucketTokenHashes, bucketCerts, bucketRules,
		bucketACME, bucketACMELocks, bucketManifestValues, bucketBlobIDs, bucketBlobHashes)

	keyApplied    = []byte("applied")     // BE(index) BE(term) of the last applied log entry
	keyAdminToken = []byte("admin_token") // hex SHA-256 of the admin token
	keyReplicas   = []byte("replicas")    // decimal replication factor
	// keyFeatureLevel is the cluster's feature level in decimal; absent
	// means atoll.LevelBase (the state of a cluster from before levels).
	keyFeatureLevel = []byte("feature_level")
)

// FSM is the replicated state machine: sites, deploys and their manifests,
// the domain index, the node table and the admin token hash, all kept in a
// bbolt file (<dir>/fsm.db) rather than in memory, so a node holds millions
// of manifest entries without holding them in RAM.
//
// hashicorp/raft drives it through ApplyBatch, Snapshot and Restore; nothing
// else may call those on a live Store. Everyone else reads through the read
// methods, which are safe for concurrent use (also while a snapshot is being
// restored) and return copies.
//
// Every batch of log entries is applied in one bbolt transaction together
// with the {index, term} of its last entry, so the state on disk always says
// exactly which entries it contains, and replaying the log after a restart
// skips them: a command is never applied twice.
type FSM struct {
	dir  string
	path string

	// mu guards the db pointer: every use holds the read lock; Restore and
	// Close take the write lock to swap or drop it. bbolt itself serializes
	// writers and lets readers run concurrently.
	mu sync.RWMutex
	db *bolt.DB

	// applied mirrors the index stored under keyApplied.
	applied atomic.Uint64
	// logBytes is the bytes of commands applied since the last Snapshot
	// (logbytes.go).
	logBytes atomic.Uint64
	// failed is the storage failure that stopped applying, nil until one
	// happens (see ApplyBatch).
	failed atomic.Pointer[error]
	// onFailure, when set, is told of the failure once, as it happens.
	onFailure func(error)

	changeMu sync.Mutex
	change   chan struct{} // closed on the next change; see Changed

	published publishedFeed // see PublishedSince

	counts   stateCounts   // see stateCounts (counts.go)
	restored atomic.Uint64 // see RestoredAt (counts.go)
}

var _ hraft.BatchingFSM = (*FSM)(nil)

// OpenFSM opens (creating if needed) the FSM stored in dir/fsm.db.
func OpenFSM(dir string) (*FSM, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("fsm dir: %w", err)
	}
	f := &FSM{dir: dir, path: filepath.Join(dir, fsmFile)}
	db, err := openBolt(f.path)
	if err != nil {
		return nil, err
	}
	f.db = db
	if err := db.View(func(tx *bolt.Tx) error {
		f.applied.Store(getApplied(tx).index)
		c, err := countState(tx)
		if err == nil {
			f.setCounts(c)
		}
		return err
	}); err != nil {
		db.Close()
		return nil, err
	}
	return f, nil
}

// openBolt opens an FSM file and creates missing buckets. A file at a
// feature level this binary does not know is refused with a
// *NewerStateError before anything is written to it.
//
// Options, and why:
//   - NoFreelistSync: the freelist is not written on every commit (fewer
//     pages per fsync, which matters with one commit per batch); after an
//     unclean shutdown bbolt rebuilds it by scanning the file once at open.
//   - FreelistMapType: the hashmap freelist stays fast when a large file is
//     fragmented (manifests are created and pruned all the time); the array
//     freelist degrades badly there.
//   - InitialMmapSize 1 GiB: a write that must grow the mmap waits for every
//     open read transaction, and a snapshot's Persist holds one for as long
//     as it takes to stream the file. Reserving address space up front (not
//     disk: the file grows as data is written) keeps applies from stalling
//     behind a snapshot until the state outgrows 1 GiB.
//   - NoStatistics: many concurrent short read transactions on the serving
//     path would otherwise contend on the statistics lock.
//   - Timeout: a second process opening the same directory fails instead of
//     hanging on the file lock.
func openBolt(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:         5 * time.Second,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: 1 << 30,
		NoStatistics:    true,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.View(func(tx *bolt.Tx) error {
		return checkLevelKnown(tx, "the raft state in "+path)
	}); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	return db, nil
}

// Close closes the bbolt file. Reads afterwards fail with ErrClosed. It is
// safe to call more than once.
func (f *FSM) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil {
		return nil
	}
	err := f.db.Close()
	f.db = nil
	return err
}

// AppliedIndex returns the index of the last log entry in the FSM's state.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// indexTerm identifies a log entry.
type indexTerm struct{ index, term uint64 }

func getApplied(tx *bolt.Tx) indexTerm {
	v := tx.Bucket(bucketMeta).Get(keyApplied)
	if len(v) != 16 {
		return indexTerm{}
	}
	return indexTerm{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])}
}

func putApplied(tx *bolt.Tx, it indexTerm) error {
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, it.index)
	binary.BigEndian.PutUint64(v[8:], it.term)
	return tx.Bucket(bucketMeta).Put(keyApplied, v)
}

// Apply applies one log entry; see ApplyBatch.
func (f *FSM) Apply(l *hraft.Log) any {
	return f.ApplyBatch([]*hraft.Log{l})[0]
}

// ApplyBatch applies committed log entries in one bbolt transaction and
// records the {index, term} of the last one in the same transaction, so the
// batch is durable as a whole (one fsync) or not at all. Entries at or below
// the stored index are already in the state and are skipped, which makes
// replaying the log after a restart idempotent. Entries other than commands
// (configuration changes) are only recorded as applied.
//
// Each response is nil or an error wrapping ErrInvalid, ErrNotFound,
// ErrExists or ErrConflict; a rejected command changes nothing. A failure of
// the storage itself (disk full, I/O error) stops the FSM (StorageFailed):
// carrying on would let raft count entries as applied that the state does
// not contain. After a restart the batch is replayed from the log. So does
// an entry this binary does not know (ErrNeedsUpgrade): the entries before
// it are applied, it and every later one wait for a newer binary.
func (f *FSM) ApplyBatch(logs []*hraft.Log) []any {
	resp := make([]any, len(logs))
	if len(logs) == 0 {
		return resp
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		// Only possible while a Store shuts down. The stored index does not
		// move, so the entries are applied on replay after the next start.
		for i := range resp {
			resp[i] = ErrClosed
		}
		return resp
	}
	if logs[len(logs)-1].Index <= f.applied.Load() {
		return resp // a replay of entries already in the state
	}
	if err := f.StorageFailed(); err != nil {
		for i := range resp {
			resp[i] = err
		}
		return resp
	}
	var last indexTerm
	halted := -1 // index in logs of an entry this binary cannot apply
	f.countLogBytes(logs)
	err := f.db.Update(func(tx *bolt.Tx) error {
		last = getApplied(tx)
		for i, l := range logs {
			if l.Index <= last.index {
				continue
			}
			if l.Type == hraft.LogCommand {
				a := applier{tx: tx, index: l.Index, counts: &f.counts}
				if err := a.apply(l.Data); err != nil {
					if errors.Is(err, ErrUnknownCommand) {
						// Keep what came before it; apply nothing from
						// here on (see ErrNeedsUpgrade).
						halted = i
						break
					}
					if !isRejection(err) {
						return fmt.Errorf("apply log %d: %w", l.Index, err)
					}
					resp[i] = err
				}
			}
			last = indexTerm{l.Index, l.Term}
		}
		return putApplied(tx, last)
	})
	if err != nil {
		err = fmt.Errorf("%w: apply entries %d-%d: %w; free space on the data disk (or fix the I/O error) and restart the node",
			ErrStorage, logs[0].Index, logs[len(logs)-1].Index, err)
		f.fail(err)
		for i := range resp {
			resp[i] = err
		}
		return resp
	}
	f.applied.Store(last.index)
	f.published.record(logs, resp, halted)
	f.notifyChanged()
	if halted >= 0 {
		// The entries before it are in the state; it and the rest of the
		// batch are applied after an upgrade, when the log is replayed.
		_, cause := Decode(logs[halted].Data)
		err := fmt.Errorf("%w: log entry %d: %v; this binary knows feature levels up to %d: run a newer atoll on this node",
			ErrNeedsUpgrade, logs[halted].Index, cause, atoll.MaxFeatureLevel)
		f.fail(err)
		for i := halted; i < len(resp); i++ {
			resp[i] = err
		}
	}
	return resp
}

// fail stops the FSM for good (until a restart): see StorageFailed.
func (f *FSM) fail(err error) {
	if f.failed.CompareAndSwap(nil, &err) && f.onFailure != nil {
		f.onFailure(err)
	}
}

// StorageFailed returns the storage failure (wrapping ErrStorage), or the
// unknown log entry (wrapping ErrNeedsUpgrade), that stopped this FSM, or
// nil. Once the FSM failed to write a batch it
// applies nothing more and takes no snapshot: hashicorp/raft counts the
// entries it was handed as applied, but the state and its applied index
// stay at the last batch written, so the state never holds a gap and a
// restart replays the log from there. Only a restart (or a restored
// snapshot) clears it.
func (f *FSM) StorageFailed() error {
	if e := f.failed.Load(); e != nil {
		return *e
	}
	return nil
}

// isRejection reports whether err is a command's deterministic rejection, as
// opposed to a storage failure.
func isRejection(err error) bool {
	for _, s := range []error{atoll.ErrInvalid, atoll.ErrNotFound, atoll.ErrExists, atoll.ErrConflict, atoll.ErrLimit} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// view runs fn in a read transaction. Keep fn short and copy values out:
// bbolt values are only valid inside the transaction, and long read
// transactions keep freed pages from being reused.
func (f *FSM) view(fn func(tx *bolt.Tx) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return ErrClosed
	}
	return f.db.View(fn)
}

// Site returns the named site, or an error wrapping ErrNotFound.
func (f *FSM) Site(name string) (atoll.Site, error) {
	var s atoll.Site
	var found bool
	err := f.view(func(tx *bolt.Tx) error {
		var err error
		s, found, err = getSite(tx, name)
		return err
	})
	if err != nil {
		return atoll.Site{}, err
	}
	if !found {
		return atoll.Site{}, fmt.Errorf("%w: site %q", atoll.ErrNotFound, name)
	}
	return s, nil
}

// Sites returns every site, ordered by name.
func (f *FSM) Sites() ([]atoll.Site, error) {
	out := []atoll.Site{} // never nil: callers encode it as a JSON list
	err := f.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSites).ForEach(func(k, v []byte) error {
			var s atoll.Site
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("decode site %q: %w", k, err)
			}
			out = append(out, s)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SiteByDomain returns the site that claims custom domain host (lowercase,
// no port, as ValidDomain accepts), or an error wrapping ErrNotFound.
func (f *FSM) SiteByDomain(host string) (atoll.Site, error) {
	var s atoll.Site
	var found bool
	err := f.view(func(tx *bolt.Tx) error {
		name, ok := domainSite(tx, host)
		if !ok {
			return nil
		}
		var err error
		s, found, err = getSite(tx, name)
		return err
	})
	if err != nil {
		return atoll.Site{}, err
	}
	if !found {
		return atoll.Site{}, fmt.Errorf("%w: domain %q", atoll.ErrNotFound, host)
	}
	return s, nil
}

// domainSite returns the name of the site that claims custom domain host;
// false when none does.
func domainSite(tx *bolt.Tx, host string) (string, bool) {
	v := tx.Bucket(bucketDomains).Get([]byte(host))
	return string(v), v != nil
}

// SitePublished returns, in one read transaction, the site named name (by
// its custom domain when byDomain, as SiteByDomain) and the deploy it
// publishes: the edge's resolution of a host, which Site (or SiteByDomain)
// then Deploy would make in two. An unknown site or domain is an error
// wrapping ErrNotFound; a site with nothing published returns the zero
// Deploy and a nil error; a published deploy that does not exist (never
// written by this FSM's commands) is an error wrapping ErrNotFound.
func (f *FSM) SitePublished(name string, byDomain bool) (atoll.Site, atoll.Deploy, error) {
	var s atoll.Site
	var d deployRecord
	var siteFound, deployFound bool
	err := f.view(func(tx *bolt.Tx) error {
		site := name
		if byDomain {
			var ok bool
			if site, ok = domainSite(tx, name); !ok {
				return nil
			}
		}
		var err error
		if s, siteFound, err = getSite(tx, site); err != nil || !siteFound || s.Published == "" {
			return err
		}
		d, deployFound, err = getDeploy(tx, s.Published)
		return err
	})
	switch {
	case err != nil:
		return atoll.Site{}, atoll.Deploy{}, err
	case !siteFound:
		return atoll.Site{}, atoll.Deploy{}, fmt.Errorf("%w: site %q", atoll.ErrNotFound, name)
	case s.Published != "" && !deployFound:
		return atoll.Site{}, atoll.Deploy{}, fmt.Errorf("%w: deploy %q", atoll.ErrNotFound, s.Published)
	}
	return s, d.Deploy, nil
}

// Deploy returns the deploy with the given id, or an error wrapping
// ErrNotFound.
func (f *FSM) Deploy(id string) (atoll.Deploy, error) {
	var d deployRecord
	var found bool
	err := f.view(func(tx *bolt.Tx) error {
		var err error
		d, found, err = getDeploy(tx, id)
		return err
	})
	if err != nil {
		return atoll.Deploy{}, err
	}
	if !found {
		return atoll.Deploy{}, fmt.Errorf("%w: deploy %q", atoll.ErrNotFound, id)
	}
	return d.Deploy, nil
}

// Deploys returns a site's retained deploys, newest (by creation) first, or
// an error wrapping ErrNotFound if there is no such site.
func (f *FSM) Deploys(site string) ([]atoll.Deploy, error) {
	out := []atoll.Deploy{}
	var found bool
	err := f.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketSites).Get([]byte(site)) == nil {
			return nil
		}
		found = true
		return eachSiteDeploy(tx, site, func(_ []byte, id string) error {
			d, ok, err := getDeploy(tx, id)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("deploy index of site %q names missing deploy %q", site, id)
			}
			out = append(out, d.Deploy)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: site %q", atoll.ErrNotFound, site)
	}
	return out, nil
}

// Rules returns the compiled rules MarkReady recorded for a deploy (see
// atoll.Deploy.Rules), or an error wrapping ErrNotFound when it has none.
func (f *FSM) Rules(deployID string) ([]byte, error) {
	var out []byte
	err := f.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketRules).Get([]byte(deployID)); v != nil {
			out = bytes.Clone(v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, fmt.Errorf("%w: deploy %q has no rules", atoll.ErrNotFound, deployID)
	}
	return out, nil
}

// errNoFile is File's answer to a miss. It names neither the deploy nor the
// path: a miss is an ordinary outcome on the serving path (the edge tries
// p, p/index.html and p.html for an extensionless request), and formatting
// an error for each cost allocations on every one of them.
var errNoFile = fmt.Errorf("%w: no such file in the deploy", atoll.ErrNotFound)

// File returns the content hash (lowercase hex SHA-256) of path in a deploy's
// manifest, or an error wrapping ErrNotFound if the deploy or the path is
// unknown. path must be in CleanPath form. This is the serving hot path: one
// short read transaction and a few lookups (a compact manifest is decoded
// up to the path, at most compactMaxFiles entries); a miss allocates
// nothing here.
func (f *FSM) File(deployID, path string) (string, error) {
	var sum [32]byte
	found := false
	err := f.view(func(tx *bolt.Tx) error {
		v, err := lookupEntry(tx, []byte(deployID), []byte(path))
		if len(v) == len(sum) {
			copy(sum[:], v)
			found = true
		}
		return err
	})
	if err != nil {
		return "", err
	}
	if !found {
		return "", errNoFile
	}
	return hex.EncodeToString(sum[:]), nil
}

// filesChunk is how many manifest entries Files copies out per read
// transaction, so that a slow fn never holds one open.
const filesChunk = 1024

// Files calls fn for every entry of a deploy's manifest in path order, and
// stops at fn's first error, which it returns. It returns an error wrapping
// ErrNotFound if the deploy does not exist, also if it is deleted (pruned)
// while the listing runs. fn runs outside any transaction: it may be slow.
func (f *FSM) Files(deployID string, fn func(atoll.File) error) error {
	var after []byte // last path handed to fn
	buf := make([]atoll.File, 0, filesChunk)
	for {
		buf = buf[:0]
		_, err := f.manifestChunk(deployID, after, filesChunk, func(k, v []byte) error {
			buf = append(buf, atoll.File{Path: string(k), Hash: hex.EncodeToString(v)})
			return nil
		})
		if err != nil {
			return err
		}
		for _, file := range buf {
			if err := fn(file); err != nil {
				return err
			}
		}
		if len(buf) < filesChunk {
			return nil
		}
		after = []byte(buf[len(buf)-1].Path)
	}
}

// seekAfter positions c on the first key after after, or on the first key
// when after is nil: how a walk resumes in a new read transaction.
func seekAfter(c *bolt.Cursor, after []byte) (k, v []byte) {
	if after == nil {
		return c.First()
	}
	if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
		return c.Next()
	}
	return k, v
}

// Nodes returns the node table, ordered by id.
func (f *FSM) Nodes() ([]atoll.Node, error) {
	out := []atoll.Node{}
	err := f.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
			var n atoll.Node
			if err := json.Unmarshal(v, &n); err != nil {
				return fmt.Errorf("decode node %q: %w", k, err)
			}
			out = append(out, n)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Replicas returns the replication factor set by SetReplicas, or 0 if none
// was set.
func (f *FSM) Replicas() int {
	var n int
	_ = f.view(func(tx *bolt.Tx) error {
		n, _ = strconv.Atoi(string(tx.Bucket(bucketMeta).Get(keyReplicas)))
		return nil
	})
	return n
}

// FeatureLevel returns the cluster's feature level (see
// atoll.MaxFeatureLevel): atoll.LevelBase until a SetFeatureLevel raised it.
func (f *FSM) FeatureLevel() int {
	level := atoll.LevelBase
	_ = f.view(func(tx *bolt.Tx) error {
		level = featureLevel(tx)
		return nil
	})
	return level
}

func featureLevel(tx *bolt.Tx) int {
	n, err := strconv.Atoi(string(tx.Bucket(bucketMeta).Get(keyFeatureLevel)))
	if err != nil || n < atoll.LevelBase {
		return atoll.LevelBase
	}
	return n
}

// Changed returns a channel that is closed the next time the state changes
// (a batch applied or a snapshot restored). Wait on it, then call Changed
// again for the change after that; no subscription to cancel.
func (f *FSM) Changed() <-chan struct{} {
	f.changeMu.Lock()
	defer f.changeMu.Unlock()
	if f.change == nil {
		f.change = make(chan struct{})
	}
	return f.change
}

// notifyChanged wakes every waiter of Changed.
func (f *FSM) notifyChanged() {
	f.changeMu.Lock()
	if f.change != nil {
		close(f.change)
		f.change = nil
	}
	f.changeMu.Unlock()
}

// AdminTokenHash returns the hex SHA-256 of the cluster's admin token, or ""
// if none is set (or the FSM is closed).
func (f *FSM) AdminTokenHash() string {
	var h string
	_ = f.view(func(tx *bolt.Tx) error {
		h = string(tx.Bucket(bucketMeta).Get(keyAdminToken))
		return nil
	})
	return h
}

// TokenByHash returns the deploy token whose secret has the SHA-256 hash
// (lowercase hex), or an error wrapping ErrNotFound. It is one lookup in the
// hash index and one in the token table, so checking a bearer token does not
// grow with the number of tokens. The caller still compares the returned
// Hash with its own in constant time.
func (f *FSM) TokenByHash(hash string) (atoll.Token, error) {
	var t atoll.Token
	var found bool
	err := f.view(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketTokenHashes).Get([]byte(hash))
		if id == nil {
			return nil
		}
		var err error
		t, found, err = getToken(tx, string(id))
		if err == nil && !found {
			err = fmt.Errorf("token hash index names missing token %q", id)
		}
		return err
	})
	if err != nil {
		return atoll.Token{}, err
	}
	if !found {
		return atoll.Token{}, fmt.Errorf("%w: token", atoll.ErrNotFound) // the hash stays out of messages
	}
	return t, nil
}

// Tokens returns every deploy token, ordered by id. Only hashes are stored:
// no secret can be read back.
func (f *FSM) Tokens() ([]atoll.Token, error) {
	out := []atoll.Token{}
	err := f.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			var t atoll.Token
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("decode token %q: %w", k, err)
			}
			out = append(out, t)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func getToken(tx *bolt.Tx, id string) (atoll.Token, bool, error) {
	v := tx.Bucket(bucketTokens).Get([]byte(id))
	if v == nil {
		return atoll.Token{}, false, nil
	}
	var t atoll.Token
	if err := json.Unmarshal(v, &t); err != nil {
		return atoll.Token{}, false, fmt.Errorf("decode token %q: %w", id, err)
	}
	return t, true, nil
}

// deployRecord is a Deploy as stored: the public fields plus the log index
// of its creation, which keys the site's deploy order index.
type deployRecord struct {
	atoll.Deploy
	Seq uint64 `json:"seq"`
}

func getSite(tx *bolt.Tx, name string) (atoll.Site, bool, error) {
	v := tx.Bucket(bucketSites).Get([]byte(name))
	if v == nil {
		return atoll.Site{}, false, nil
	}
	var s atoll.Site
	if err := json.Unmarshal(v, &s); err != nil {
		return atoll.Site{}, false, fmt.Errorf("decode site %q: %w", name, err)
	}
	return s, true, nil
}

func getDeploy(tx *bolt.Tx, id string) (deployRecord, bool, error) {
	v := tx.Bucket(bucketDeploys).Get([]byte(id))
	if v == nil {
		return deployRecord{}, false, nil
	}
	var d deployRecord
	if err := json.Unmarshal(v, &d); err != nil {
		return deployRecord{}, false, fmt.Errorf("decode deploy %q: %w", id, err)
	}
	return d, true, nil
}

// siteDeployKey is the key of a deploy in the site's order index: the site
// name, a 0x00 separator (never in a site name, so one site's keys are never
// a prefix range of another's), and the big-endian log index of the
// deploy's creation.
func siteDeployKey(site string, seq uint64) []byte {
	k := make([]byte, 0, len(site)+9)
	k = append(k, site...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// eachSiteDeploy calls fn with the order-index key and id of each of a
// site's deploys, newest first. fn must not modify the index.
func eachSiteDeploy(tx *bolt.Tx, site string, fn func(key []byte, id string) error) error {
	prefix := append([]byte(site), 0)
	c := tx.Bucket(bucketSiteDeploys).Cursor()
	// Position on the last key with the prefix: seek past it, step back.
	k, v := c.Seek(append([]byte(site), 1))
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
		if err := fn(k, string(v)); err != nil {
			return err
		}
	}
	return nil
}
