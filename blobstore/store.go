package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atoll-hosting/atoll/internal/durable"
)

// Errors returned by the Store. They are wrapped with the blob's hash and the
// operation; test them with errors.Is.
var (
	// ErrNotFound: the blob, or the requested variant of it, is not stored.
	ErrNotFound = errors.New("blob not found")
	// ErrHashMismatch: the bytes do not hash to the expected name, either
	// at Put (the upload is rejected and nothing is kept) or at Verify (the
	// stored copy is corrupt and must not be served).
	ErrHashMismatch = errors.New("blob hash mismatch")
	// ErrInvalidHash: the name is not 64 lowercase hex digits.
	ErrInvalidHash = errors.New("invalid blob hash")
	// ErrMalformed: a blob transfer (its header, or a body whose length is
	// not the one the header gives) or a peer request is not well formed.
	// Nothing of it is kept.
	ErrMalformed = errors.New("malformed transfer or peer request")
	// ErrNoSpace: the disk is full (the file system said ENOSPC or
	// EDQUOT), or its free space is below Config.MinFreeBytes. Nothing of
	// the refused write is kept; the store keeps serving what it holds.
	ErrNoSpace = errors.New("not enough disk space")
	// ErrPending: the blob's compressed variants are still to be made, so
	// there are none to send yet (ExportVariants).
	ErrPending = errors.New("blob variants not made yet")
)

// Encodings of the compressed variants, as named in HTTP Content-Encoding.
const (
	EncodingBrotli = "br"
	EncodingZstd   = "zstd"
	EncodingGzip   = "gzip"
)

// encodings lists every variant in the order Info.Variants uses, with the
// file name suffix of each.
var encodings = [...]struct{ name, ext string }{
	{EncodingBrotli, ".br"},
	{EncodingZstd, ".zst"},
	{EncodingGzip, ".gz"},
}

// extFor returns the file name suffix of a variant encoding, "" for the
// identity, and false for an unknown encoding. "identity" is accepted as the
// HTTP name of the identity.
func extFor(encoding string) (string, bool) {
	switch encoding {
	case "", "identity":
		return "", true
	}
	for _, e := range encodings {
		if e.name == encoding {
			return e.ext, true
		}
	}
	return "", false
}

// TempFolder is the folder of Dir that holds the store's temp files.
// Nothing else in Dir is named so; the name "tmp" is kept by node's
// data-dir format as a regular file, so that a store from before TempFolder
// existed, which made "tmp" its temp folder, fails to open (see node's
// data-dir formats).
const TempFolder = "temp"

// Config configures a Store.
type Config struct {
	// Dir is the folder that holds the blobs; created if missing. It must
	// be on one file system (temp files are renamed into place) and used
	// by one Store at a time.
	Dir string
	// Logger receives the store's few log lines (startup cleanup, failed
	// best-effort removals). Nil means slog.Default().
	Logger *slog.Logger
	// MinFreeBytes is the free space Put and Import leave on Dir's file
	// system: below it they fail with ErrNoSpace (see space.go). 0 checks
	// nothing beyond the file system's own ENOSPC.
	MinFreeBytes int64
	// CompressWorkers is the number of background workers that make the
	// compressed variants of new blobs, one pass at a time each; 0 means
	// half the CPUs (at least one). Negative means none: blobs stay
	// pending (and are served without variants) until a store with
	// workers is opened on the folder.
	CompressWorkers int
	// OnVariants, if set, is called (from a background worker, after the
	// files are durable and the Stat cache knows them) with the hash of a
	// blob whose compression was just decided (its variants published, or
	// none worth keeping), so that caches above the store can forget the
	// pending, variant-less Info they hold.
	OnVariants func(hash string)
	// OnCorrupt, if set, is called (from a background worker, which waits
	// for it) with the hash of a blob whose identity bytes were found not
	// to match their hash while its variants were made. No variant is
	// published; the store keeps the blob as it is, for the caller to
	// quarantine and replace (as a scrub would).
	OnCorrupt func(hash string)
	// VariantsWait, if set, is called (under the blob's lock: it must not
	// call the store) when a Put or Import publishes a blob whose variants
	// are still to be made. A positive answer is how long the store waits
	// for another node to send them (AcceptVariants) before it compresses
	// the blob itself; zero or negative compresses it here as soon as a
	// worker is free. Blobs found pending by New are compressed here.
	VariantsWait func(hash string) time.Duration
}

// DefaultConfig returns the configuration of a node started with the
// default --data folder.
func DefaultConfig() Config {
	return Config{Dir: filepath.Join("atoll-data", "blobs"), Logger: slog.Default()}
}

// Variant describes one stored compressed form of a blob.
type Variant struct {
	Encoding string // "br", "zstd" or "gzip"
	Size     int64  // compressed size in bytes
}

// Info describes a stored blob.
type Info struct {
	Hash     string    // lowercase hex SHA-256 of the identity bytes
	Size     int64     // size of the identity bytes
	Variants []Variant // in order br, zstd, gzip; only those kept
	// Pending is true while the background compressor has still to make
	// the variants of a blob that has none yet: the blob passed the
	// compression rule (big enough, and its content does not sniff as a
	// compressed format), so a reader may want to compress it itself
	// meanwhile (the edge does, serve/onthefly.go). It is false once the
	// compressor has decided, whether or not it kept any variant.
	Pending bool
}

// Variant returns the variant with the given encoding, if the blob has it.
func (i Info) Variant(encoding string) (Variant, bool) {
	for _, v := range i.Variants {
		if v.Encoding == encoding {
			return v, true
		}
	}
	return Variant{}, false
}

// Store is a content-addressed blob store in one local folder. See the
// package documentation for its layout and DESIGN.md for its invariants.
type Store struct {
	dir   string
	tmp   string
	log   *slog.Logger
	locks hashLocks
	cache infoCache
	acct  *accounting // sizes and access times, for Usage and EvictLRU
	space spaceGuard  // the free space reserve (space.go)

	// shardMu serializes the creation of shard folders; shardReady[i] is
	// set once folder i exists and its entry in dir is durable.
	shardMu    sync.Mutex
	shardReady [256]atomic.Bool

	unsynced unsyncedCopies // cache copies not yet fsynced (cachecopy.go)
	orphans  orphanLedger   // blobs that may have variants without identity (orphans.go)
	fsSync   *groupSync     // PutBatch's shared syncfs rounds (putbatch.go)

	comp         compressor // background compression (background.go)
	onVariants   func(hash string)
	onCorrupt    func(hash string)
	variantsWait func(hash string) time.Duration
}

// New opens (creating if needed) the store in cfg.Dir. It removes what a
// crash may have left behind: every file in the temp folder, and every
// variant file whose identity file is missing. That sweep lists each shard
// folder once (names only, no stat), which is quick next to the rest of a
// node's startup even with millions of blobs.
func New(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("blobstore: Config.Dir is empty")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{
		dir:    cfg.Dir,
		tmp:    filepath.Join(cfg.Dir, TempFolder),
		log:    logger.With("component", "blobstore"),
		cache:  newInfoCache(defaultCacheEntries),
		acct:   newAccounting(),
		space:  newSpaceGuard(cfg.MinFreeBytes),
		fsSync: newGroupSync(func() error { return syncFS(cfg.Dir) }),

		onVariants:   cfg.OnVariants,
		onCorrupt:    cfg.OnCorrupt,
		variantsWait: cfg.VariantsWait,
	}
	s.locks.m = make(map[string]*hashLock)
	if err := s.prepareDirs(); err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	pending, err := s.sweepOrphans()
	if err != nil {
		return nil, fmt.Errorf("blobstore: remove orphan variants: %w", err)
	}
	if err := s.recoverUnsynced(); err != nil {
		return nil, fmt.Errorf("blobstore: check cache copies not synced before a crash: %w", err)
	}
	go s.loadAccounting()
	s.startCompressor(compressWorkers(cfg), pending)
	return s, nil
}

// prepareDirs creates the store and temp folders and the 256 shard
// folders, and fsyncs the store folder once, so that every entry in it,
// including any a crashed process created without a sync, is durable.
// Every shard folder then exists, so ensureShard only reads its flag.
func (s *Store) prepareDirs() error {
	_, err := os.Stat(s.dir)
	created := errors.Is(err, fs.ErrNotExist)
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	markTopDir(s.dir)
	if err := s.freshTemp(); err != nil {
		return err
	}
	if created {
		// Make the new store folder's own entry durable too.
		if err := durable.SyncDir(filepath.Dir(filepath.Clean(s.dir))); err != nil {
			return err
		}
	}
	names, err := readNames(s.dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if i, ok := shardIndex(n); ok {
			if fi, err := os.Stat(filepath.Join(s.dir, n)); err == nil && fi.IsDir() {
				s.shardReady[i].Store(true)
			}
		}
	}
	// Every missing shard folder is made now, under the one fsync below,
	// rather than by the first write into it with an fsync of its own
	// (256 of them, one at a time, in a new store's first deploy).
	for i := range s.shardReady {
		if s.shardReady[i].Load() {
			continue
		}
		err := os.Mkdir(filepath.Join(s.dir, fmt.Sprintf("%02x", i)), 0o755)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		s.shardReady[i].Store(true)
	}
	return durable.SyncDir(s.dir)
}

// ensureShard makes sure the shard folder of hash exists and is durable
// before a blob is renamed into it.
func (s *Store) ensureShard(hash string) error {
	i, _ := shardIndex(hash[:2])
	if s.shardReady[i].Load() {
		return nil
	}
	s.shardMu.Lock()
	defer s.shardMu.Unlock()
	if s.shardReady[i].Load() {
		return nil
	}
	if err := os.Mkdir(filepath.Join(s.dir, hash[:2]), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := durable.SyncDir(s.dir); err != nil {
		return err
	}
	s.shardReady[i].Store(true)
	return nil
}

// shardIndex parses a shard folder name: two lowercase hex digits.
func shardIndex(name string) (int, bool) {
	if len(name) != 2 || !validHex(name) {
		return 0, false
	}
	i, err := strconv.ParseUint(name, 16, 8)
	return int(i), err == nil
}

// shards returns the names of the shard folders that exist, in order.
func (s *Store) shards() []string {
	var names []string
	for i := range s.shardReady {
		if s.shardReady[i].Load() {
			names = append(names, fmt.Sprintf("%02x", i))
		}
	}
	return names
}

// freshTemp makes the temp folder anew at every start: a folder made
// under a random name (so a file system that places a new folder by a
// hash of its name, as ext4's Orlov allocator does below a top directory,
// puts it in a block group picked afresh) is renamed to TempFolder,
// replacing the old one, which is moved aside first and removed with
// everything in it (writes that never completed); leftovers of a crash
// during an earlier start ("temp.*") go too. Every temp file is created
// in this folder, so its inode lands in the folder's block group, and the
// identity file keeps that inode after its rename into a shard. Why the
// group matters: DESIGN.md, "Placement of the temp folder".
func (s *Store) freshTemp() error {
	names, err := readNames(s.dir)
	if err != nil {
		return err
	}
	var old []string
	for _, n := range names {
		if strings.HasPrefix(n, TempFolder+".") {
			old = append(old, n)
		}
	}
	if slices.Contains(names, TempFolder) {
		aside := fmt.Sprintf("%s.old-%016x", TempFolder, rand.Uint64())
		if err := os.Rename(s.tmp, filepath.Join(s.dir, aside)); err != nil {
			return err
		}
		old = append(old, aside)
	}
	fresh := filepath.Join(s.dir, fmt.Sprintf("%s.new-%016x", TempFolder, rand.Uint64()))
	if err := os.Mkdir(fresh, 0o755); err != nil {
		return err
	}
	if err := os.Rename(fresh, s.tmp); err != nil {
		return err
	}
	count := 0
	for _, n := range old {
		entries, _ := os.ReadDir(filepath.Join(s.dir, n))
		count += len(entries)
		if err := os.RemoveAll(filepath.Join(s.dir, n)); err != nil {
			return err
		}
	}
	if count > 0 {
		s.log.Info("removed leftover temp files", "count", count)
	}
	return nil
}

// sweepOrphans removes variant files and pending markers whose identity file
// is missing: what a crash between a Put's variant renames and its identity
// rename, or inside a Delete, leaves behind. They are invisible to readers
// either way. It returns the blobs whose pending marker is there with the
// identity: acknowledged blobs whose variants are still to be made.
func (s *Store) sweepOrphans() (pending []string, err error) {
	removed := 0
	for _, name := range s.shards() {
		shard := filepath.Join(s.dir, name)
		names, err := readNames(shard)
		if err != nil {
			return nil, err
		}
		present := make(map[string]bool, len(names))
		for _, n := range names {
			if validHash(n) {
				present[n] = true
			}
		}
		changed := false
		for _, n := range names {
			base, _, ok := splitVariantName(n)
			if !ok {
				base, ok = strings.CutSuffix(n, pendingExt)
				if !ok || !validHash(base) {
					continue
				}
				if present[base] {
					pending = append(pending, base)
					continue
				}
			}
			if present[base] {
				continue
			}
			if err := os.Remove(filepath.Join(shard, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			removed++
			changed = true
		}
		if changed {
			if err := durable.SyncDir(shard); err != nil {
				return nil, err
			}
		}
	}
	if removed > 0 {
		s.log.Info("removed orphan variants", "count", removed)
	}
	return pending, nil
}

// splitVariantName splits "<hash>.br" (or .zst, .gz) into the hash and the
// encoding.
func splitVariantName(name string) (hash, encoding string, ok bool) {
	for _, e := range encodings {
		if len(name) == 64+len(e.ext) && name[64:] == e.ext && validHash(name[:64]) {
			return name[:64], e.name, true
		}
	}
	return "", "", false
}

// Stat describes a stored blob, or returns an error wrapping ErrNotFound.
//
// Stat is on the serving hot path, so its answers come from a bounded
// in-memory cache (see infoCache) when they can; a miss costs one stat call
// for the identity file and one per possible variant.
func (s *Store) Stat(hash string) (Info, error) {
	if !validHash(hash) {
		return Info{}, fmt.Errorf("stat blob %q: %w", hash, ErrInvalidHash)
	}
	if info, ok := s.cache.get(hash); ok {
		return info, nil
	}
	gen := s.cache.generation()
	info, err := s.statDisk(hash)
	if err != nil {
		return Info{}, err
	}
	s.cache.addIfGeneration(info, gen)
	return info, nil
}

// statDisk builds a blob's Info from the files present.
func (s *Store) statDisk(hash string) (Info, error) {
	base := s.path(hash)
	fi, err := os.Stat(base)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Info{}, fmt.Errorf("stat blob %s: %w", hash, ErrNotFound)
		}
		return Info{}, fmt.Errorf("stat blob %s: %w", hash, err)
	}
	info := Info{Hash: hash, Size: fi.Size()}
	for _, e := range encodings {
		vfi, err := os.Stat(base + e.ext)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return Info{}, fmt.Errorf("stat blob %s variant %s: %w", hash, e.name, err)
		}
		info.Variants = append(info.Variants, Variant{Encoding: e.name, Size: vfi.Size()})
	}
	if len(info.Variants) == 0 {
		if _, err := os.Lstat(base + pendingExt); err == nil {
			info.Pending = true
		} else if !errors.Is(err, fs.ErrNotExist) {
			return Info{}, fmt.Errorf("stat blob %s pending marker: %w", hash, err)
		}
	}
	return info, nil
}

// Has reports whether the blob is stored (complete). An invalid hash is not
// stored.
func (s *Store) Has(hash string) bool {
	_, err := s.Stat(hash)
	return err == nil
}

// Open opens a stored blob for reading: the identity bytes when encoding is
// "" (or "identity"), else the "br", "zstd" or "gzip" variant. The file is
// positioned at offset 0; size is its length in bytes. The caller closes it.
// The error wraps ErrNotFound when the blob or that variant is not stored,
// including for an encoding the store never keeps.
//
// An open file stays readable even if the blob is deleted meanwhile.
func (s *Store) Open(hash, encoding string) (*os.File, int64, error) {
	if !validHash(hash) {
		return nil, 0, fmt.Errorf("open blob %q: %w", hash, ErrInvalidHash)
	}
	ext, ok := extFor(encoding)
	if !ok {
		return nil, 0, fmt.Errorf("open blob %s: unknown encoding %q: %w", hash, encoding, ErrNotFound)
	}
	if ext != "" {
		// A variant counts only while its identity file exists: without
		// it, the variant is a crash leftover. Stat is usually a cache hit.
		info, err := s.Stat(hash)
		if err != nil {
			return nil, 0, err
		}
		if _, ok := info.Variant(encoding); !ok {
			return nil, 0, fmt.Errorf("open blob %s variant %s: %w", hash, encoding, ErrNotFound)
		}
	}
	f, err := os.Open(s.path(hash) + ext)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// Removed behind the cache's back (Delete racing with
			// us, or an operator): forget what the cache says.
			s.cache.remove(hash)
			return nil, 0, fmt.Errorf("open blob %s%s: %w", hash, ext, ErrNotFound)
		}
		return nil, 0, fmt.Errorf("open blob %s%s: %w", hash, ext, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("open blob %s%s: %w", hash, ext, err)
	}
	s.acct.touch(hash)
	return f, fi.Size(), nil
}

// Delete removes a blob and its variants. The identity file goes first, so
// the blob stops being visible before anything else is touched; a crash
// after that leaves only orphan variants, which New and Put remove. Deleting
// a blob that is not stored is not an error (Delete is idempotent), but it
// still removes orphan variants of that hash.
func (s *Store) Delete(hash string) error {
	if !validHash(hash) {
		return fmt.Errorf("delete blob %q: %w", hash, ErrInvalidHash)
	}
	unlock := s.locks.lock(hash)
	defer unlock()
	return s.deleteLocked(hash, true)
}

// deleteLocked is Delete for a valid hash whose write lock the caller holds.
// Unless synced, it skips the folder fsync: after a crash the blob may be
// back, whole or in part (fewer variants, or orphan variants New removes),
// all valid states (EvictLRU uses that: a cached copy that comes back is
// harmless, and a fsync per blob would make evicting thousands slow).
func (s *Store) deleteLocked(hash string, synced bool) error {
	base := s.path(hash)
	s.orphans.mark(hash) // until every variant file is gone
	removed := false
	err := os.Remove(base)
	switch {
	case err == nil:
		removed = true
	case errors.Is(err, fs.ErrNotExist):
	default:
		return fmt.Errorf("delete blob %s: %w", hash, err)
	}
	// After the identity is gone, so a concurrent Stat cannot cache it
	// again (see infoCache).
	s.cache.remove(hash)
	s.acct.removed(hash)
	if err := os.Remove(base + pendingExt); err == nil {
		removed = true
		s.comp.settle(hash) // no longer waiting or queued for its variants
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s pending marker: %w", hash, err)
	}
	for _, e := range encodings {
		err := os.Remove(base + e.ext)
		switch {
		case err == nil:
			removed = true
		case errors.Is(err, fs.ErrNotExist):
		default:
			return fmt.Errorf("delete blob %s variant %s: %w", hash, e.name, err)
		}
	}
	s.orphans.clear(hash)
	if removed && synced {
		if err := durable.SyncDir(filepath.Dir(base)); err != nil {
			return fmt.Errorf("delete blob %s: %w", hash, err)
		}
	}
	return nil
}

// Walk calls fn with the hash of every complete blob, shard by shard in hash
// order. Blobs put or deleted during the walk may or may not be visited.
// Walk stops at the first error from fn, or when ctx is done, and returns
// that error.
func (s *Store) Walk(ctx context.Context, fn func(hash string) error) error {
	for _, shard := range s.shards() {
		if err := ctx.Err(); err != nil {
			return err
		}
		names, err := readNames(filepath.Join(s.dir, shard))
		if err != nil {
			return fmt.Errorf("walk blobs: %w", err)
		}
		slices.Sort(names)
		for j, n := range names {
			if !validHash(n) {
				continue
			}
			if j%1024 == 1023 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if err := fn(n); err != nil {
				return err
			}
		}
	}
	return nil
}

// path returns the identity file of a (valid) hash.
func (s *Store) path(hash string) string {
	return filepath.Join(s.dir, hash[:2], hash)
}

// validHash reports whether h is 64 lowercase hex digits. Every hash is
// checked with it before it becomes part of a path.
func validHash(h string) bool {
	return len(h) == 64 && validHex(h)
}

// validHex reports whether h is made of lowercase hex digits only.
func validHex(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// readNames lists the names in a folder without stat-ing them.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// hashLocks serializes the writers (Put's publish step, Delete) of one hash;
// different hashes never wait for each other. Readers take no lock: what
// they may observe is described in DESIGN.md.
type hashLocks struct {
	mu sync.Mutex
	m  map[string]*hashLock
}

type hashLock struct {
	sync.Mutex
	refs int
}

// lock locks hash and returns the function that unlocks it.
func (l *hashLocks) lock(hash string) (unlock func()) {
	l.mu.Lock()
	hl := l.m[hash]
	if hl == nil {
		hl = &hashLock{}
		l.m[hash] = hl
	}
	hl.refs++
	l.mu.Unlock()

	hl.Lock()
	return func() {
		hl.Unlock()
		l.mu.Lock()
		hl.refs--
		if hl.refs == 0 {
			delete(l.m, hash)
		}
		l.mu.Unlock()
	}
}

func cloneInfo(i Info) Info {
	i.Variants = slices.Clone(i.Variants)
	return i
}
