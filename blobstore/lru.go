package blobstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Cache accounting. A node keeps copies of blobs it does not own (an edge's
// read-through copies, copies left behind by a membership change) in a
// size-bounded cache, and evicts the least recently served first. For that,
// the Store keeps in memory, for every blob, the bytes it takes on disk
// (identity plus variants) and the time it was last opened.
//
// Choices:
//   - The table is complete, not lazy: Usage must count every blob, so New
//     starts a scan of the store in the background (one folder listing per
//     shard, as New's sweep already does, plus one stat per file: identity
//     and each variant, scanWorkers shards at a time). New does not wait for
//     it; until it ends, Usage counts only what it has seen so far, and
//     EvictLRU waits for it. Measured on the 2-vCPU development VM (ext4,
//     warm metadata, ~10 µs per stat there): 50,000 blobs with three
//     variants each (200,000 files) in 2.2 s, so about 45 s per million
//     such blobs, 11 s per million blobs without variants; on bare metal a
//     stat costs about a tenth of that, and with cold metadata the disk's
//     random reads dominate. Its memory, measured: about 80 bytes per blob
//     (the binary hash as map key, a pointer to a 16-byte entry, the map's
//     slack), so ~80 MB per million blobs.
//   - Access times are process-local and monotonic (nanoseconds since New,
//     immune to wall clock steps). Blobs found by the scan get their
//     identity file's modification time, i.e. when they were stored, on the
//     same scale (negative); accesses after the restart refine that order.
//   - Open records an access with a read-locked map lookup and an atomic
//     store (skipped when the stored time is already newer), so serving
//     never takes a write lock. The table is split in 256 shards (by the
//     hash's first byte, as the folders are), so EvictLRU's snapshot and
//     writers never hold one lock for long.
//   - Entries are added by publish (Put, Import) under the blob's write
//     lock and removed by Delete under the same lock, so the table always
//     agrees with the identity files this process made or removed. The
//     background scan races with them; a Delete during the scan leaves a
//     tombstone, so the scan never brings back a blob deleted after it
//     looked at it.
type accounting struct {
	start  time.Time
	clock  func() int64 // tests only; nil: nanoseconds since start
	shards [256]accShard
	blobs  atomic.Int64
	bytes  atomic.Int64
	loaded chan struct{} // closed when the startup scan ends
}

type accShard struct {
	mu sync.RWMutex
	m  map[[32]byte]*accEntry
	// deleted holds the blobs deleted while the startup scan runs; nil
	// once it ended.
	deleted map[[32]byte]struct{}
}

type accEntry struct {
	size  int64        // identity plus variants, in bytes; never changes
	atime atomic.Int64 // last access, in accounting.now units
}

func newAccounting() *accounting {
	a := &accounting{start: time.Now(), loaded: make(chan struct{})}
	for i := range a.shards {
		a.shards[i].m = make(map[[32]byte]*accEntry)
		a.shards[i].deleted = make(map[[32]byte]struct{})
	}
	return a
}

func (a *accounting) now() int64 {
	if a.clock != nil {
		return a.clock()
	}
	return int64(time.Since(a.start))
}

// accKey returns the binary form of a valid hash, without allocating (Open
// calls it for every access).
func accKey(hash string) [32]byte {
	var k [32]byte
	for i := range k {
		k[i] = unhex(hash[2*i])<<4 | unhex(hash[2*i+1])
	}
	return k
}

// unhex returns the value of a lowercase hex digit.
func unhex(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

func (a *accounting) shard(k [32]byte) *accShard { return &a.shards[k[0]] }

// added records a blob just published. Callers hold its write lock.
func (a *accounting) added(info Info) {
	size := info.Size
	for _, v := range info.Variants {
		size += v.Size
	}
	e := &accEntry{size: size}
	e.atime.Store(a.now())
	k := accKey(info.Hash)
	sh := a.shard(k)
	sh.mu.Lock()
	old := sh.m[k]
	sh.m[k] = e
	sh.mu.Unlock()
	if old != nil {
		a.blobs.Add(-1)
		a.bytes.Add(-old.size)
	}
	a.blobs.Add(1)
	a.bytes.Add(size)
}

// removed forgets a deleted blob. Callers hold its write lock.
func (a *accounting) removed(hash string) {
	k := accKey(hash)
	sh := a.shard(k)
	sh.mu.Lock()
	e := sh.m[k]
	delete(sh.m, k)
	if sh.deleted != nil {
		sh.deleted[k] = struct{}{}
	}
	sh.mu.Unlock()
	if e != nil {
		a.blobs.Add(-1)
		a.bytes.Add(-e.size)
	}
}

// touch records an access to a (valid) hash, if the blob is known.
func (a *accounting) touch(hash string) {
	k := accKey(hash)
	sh := a.shard(k)
	sh.mu.RLock()
	e := sh.m[k]
	sh.mu.RUnlock()
	if e == nil {
		return
	}
	if now := a.now(); now > e.atime.Load() {
		e.atime.Store(now)
	}
}

// entry returns the entry of k, or nil.
func (a *accounting) entry(k [32]byte) *accEntry {
	sh := a.shard(k)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.m[k]
}

// scanned is a blob found by the startup scan.
type scanned struct {
	key   [32]byte
	size  int64
	atime int64
}

// addScanned records blobs of one shard found by the startup scan, except
// those known already (published meanwhile) or deleted since the scan
// started.
func (a *accounting) addScanned(sh *accShard, found []scanned) {
	var blobs, size int64
	sh.mu.Lock()
	for _, f := range found {
		if _, ok := sh.m[f.key]; ok {
			continue
		}
		if _, ok := sh.deleted[f.key]; ok {
			continue
		}
		e := &accEntry{size: f.size}
		e.atime.Store(f.atime)
		sh.m[f.key] = e
		blobs++
		size += f.size
	}
	sh.mu.Unlock()
	a.blobs.Add(blobs)
	a.bytes.Add(size)
}

func (a *accounting) finishLoading() {
	for i := range a.shards {
		sh := &a.shards[i]
		sh.mu.Lock()
		sh.deleted = nil
		sh.mu.Unlock()
	}
	close(a.loaded)
}

func (a *accounting) waitLoaded(ctx context.Context) error {
	select {
	case <-a.loaded:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// candidate is an entry as EvictLRU saw it.
type candidate struct {
	key   [32]byte
	size  int64
	atime int64
}

// snapshot copies every entry, one shard lock at a time.
func (a *accounting) snapshot() []candidate {
	out := make([]candidate, 0, a.blobs.Load()+64)
	for i := range a.shards {
		sh := &a.shards[i]
		sh.mu.RLock()
		for k, e := range sh.m {
			out = append(out, candidate{key: k, size: e.size, atime: e.atime.Load()})
		}
		sh.mu.RUnlock()
	}
	return out
}

// scanWorkers is how many shards the startup scan reads at once: the scan
// mostly waits on stat system calls and, with cold metadata, on the disk,
// which serves parallel requests better.
const scanWorkers = 4

// loadAccounting is the startup scan (see accounting). It runs once, in
// its own goroutine, started by New.
func (s *Store) loadAccounting() {
	defer s.acct.finishLoading()
	began := time.Now()
	shards := make(chan string)
	var wg sync.WaitGroup
	for range scanWorkers {
		wg.Go(func() {
			for name := range shards {
				if err := s.scanShard(name); err != nil {
					s.log.Error("cache accounting: scan shard; some of its blobs are not counted", "shard", name, "err", err)
				}
			}
		})
	}
	for _, name := range s.shards() {
		shards <- name
	}
	close(shards)
	wg.Wait()
	blobs, size := s.Usage()
	s.log.Debug("cache accounting loaded", "blobs", blobs, "bytes", size, "took", time.Since(began))
}

// scanShard adds the blobs of one shard folder to the accounting.
func (s *Store) scanShard(name string) error {
	i, _ := shardIndex(name)
	dir := filepath.Join(s.dir, name)
	names, err := readNames(dir)
	if err != nil {
		return err
	}
	// Stat relative to the folder: no path walk per file.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	present := make(map[string]bool, len(names))
	for _, n := range names {
		present[n] = true
	}
	var found []scanned
	for _, n := range names {
		if !validHash(n) {
			continue
		}
		fi, err := root.Stat(n)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				s.log.Warn("cache accounting: stat blob", "blob", n, "err", err)
			}
			continue
		}
		f := scanned{key: accKey(n), size: fi.Size(), atime: min(0, int64(fi.ModTime().Sub(s.acct.start)))}
		for _, e := range encodings {
			if !present[n+e.ext] {
				continue
			}
			if vfi, err := root.Stat(n + e.ext); err == nil {
				f.size += vfi.Size()
			}
		}
		found = append(found, f)
	}
	s.acct.addScanned(&s.acct.shards[i], found)
	return nil
}

// Usage returns the number of blobs stored and the bytes they take on disk,
// identity and variant files together (not counting file system overhead).
// It is a pair of atomic loads. Right after New, while the background scan
// of the store runs (see EvictLRU), it counts only the blobs seen so far.
func (s *Store) Usage() (blobs int, bytes int64) {
	return int(s.acct.blobs.Load()), s.acct.bytes.Load()
}

// EvictLRU deletes the least recently accessed blobs for which evictable
// returns true, oldest first, until those blobs together take at most
// maxBytes on disk (identity plus variants); blobs evictable rejects are
// never deleted and not counted against maxBytes. A nil evictable makes
// every blob evictable. It returns how many blobs it deleted and the bytes
// freed; on error (a failed Delete, ctx done) it stops and returns what it
// did so far with the error.
//
// An access is an Open of the blob (identity or variant), or a Put or Import
// of it while it is stored; Stat, Has, Export and Verify are not. Blobs
// stored before the process started count as accessed when they were stored
// until opened again.
//
// EvictLRU is safe to run alongside every other method:
//   - a blob being written is not visible and not accounted until its
//     identity file is in place, so it is never a candidate;
//   - each blob is deleted under its write lock, and only if it was not
//     accessed since EvictLRU took its snapshot: a Put or Import that
//     returned it as stored, or an Open of it, since then keeps it;
//   - an Open that races with the deletion itself keeps a readable file
//     (POSIX unlink semantics); the next Open reports ErrNotFound.
//
// Blobs are deleted as Delete does, but without fsyncing their folder:
// after a crash an evicted blob may be back (whole, or with fewer
// variants, both valid states), which is harmless for a cached copy and
// keeps evicting thousands of blobs from taking a fsync each.
//
// evictable is called without any lock of the store held, once per blob.
// EvictLRU first waits (bounded by ctx) for the startup scan begun by New,
// so that it never evicts recent blobs while older ones are not counted
// yet. When the whole store fits in maxBytes it returns at once, without
// calling evictable; otherwise it copies and sorts the table (about 50 bytes
// and a call of evictable per blob).
func (s *Store) EvictLRU(ctx context.Context, maxBytes int64, evictable func(hash string) bool) (evicted int, freed int64, err error) {
	if err := s.acct.waitLoaded(ctx); err != nil {
		return 0, 0, fmt.Errorf("evict blobs: %w", err)
	}
	if _, total := s.Usage(); total <= maxBytes {
		return 0, 0, nil
	}
	cands := s.acct.snapshot()
	var total int64
	kept := cands[:0]
	for i, c := range cands {
		if i%4096 == 4095 {
			if err := ctx.Err(); err != nil {
				return 0, 0, fmt.Errorf("evict blobs: %w", err)
			}
		}
		if evictable != nil && !evictable(hex.EncodeToString(c.key[:])) {
			continue
		}
		kept = append(kept, c)
		total += c.size
	}
	cands = kept
	if total <= maxBytes {
		return 0, 0, nil
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		if c := cmp.Compare(a.atime, b.atime); c != 0 {
			return c
		}
		return bytes.Compare(a.key[:], b.key[:])
	})
	for _, c := range cands {
		if total <= maxBytes {
			break
		}
		if err := ctx.Err(); err != nil {
			return evicted, freed, fmt.Errorf("evict blobs: %w", err)
		}
		outcome, err := s.evictIfIdle(c)
		if err != nil {
			return evicted, freed, fmt.Errorf("evict blobs: %w", err)
		}
		switch outcome {
		case evictDeleted:
			evicted++
			freed += c.size
			total -= c.size
		case evictGone:
			total -= c.size
		case evictAccessed:
			// Recently used now: keep it, go on with older ones.
		}
	}
	return evicted, freed, nil
}

type evictOutcome int

const (
	evictDeleted  evictOutcome = iota // deleted by EvictLRU
	evictGone                         // deleted meanwhile by someone else
	evictAccessed                     // accessed since the snapshot: kept
)

// evictIfIdle deletes the blob of c, under its write lock, unless it was
// accessed (or deleted and stored again) since c was taken.
func (s *Store) evictIfIdle(c candidate) (evictOutcome, error) {
	hash := hex.EncodeToString(c.key[:])
	unlock := s.locks.lock(hash)
	defer unlock()
	e := s.acct.entry(c.key)
	switch {
	case e == nil:
		return evictGone, nil
	case e.atime.Load() != c.atime || e.size != c.size:
		return evictAccessed, nil
	}
	if err := s.deleteLocked(hash, false); err != nil {
		return evictAccessed, err
	}
	return evictDeleted, nil
}
