package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	"github.com/atoll-hosting/atoll/internal/ctxio"
	"github.com/atoll-hosting/atoll/internal/durable"
	"github.com/atoll-hosting/atoll/internal/osfile"
)

// BatchNext yields the blobs of a PutBatch one at a time: the hash each
// must have and its bytes (read to EOF before the next call), then io.EOF.
type BatchNext func() (want string, body io.Reader, err error)

// batchStep, when set (tests only), is called at each step of a
// PutBatch: "received", "synced", "marked" (after each pending marker),
// "placed" (after each rename), and "committed" (after the folder
// fsyncs), and of an AcceptVariantsBatch: "received", "synced", "placed"
// (after each blob's renames) and "committed", so a test can take the
// state a crash there would leave.
var batchStep func(step string)

func step(name string) {
	if batchStep != nil {
		batchStep(name)
	}
}

// batchSyncFS, on Linux, makes PutBatch's two durability points one
// syncfs(2) round each (the temp files' data; then the renames and
// markers), shared with the concurrent batches (groupSync), instead of an
// fsync per temp file and per shard folder. Tests set it to compare both.
var batchSyncFS = true

// syncWorkers bounds the concurrent fsyncs of one group commit: enough
// for the file system to commit them in one journal transaction, few
// enough not to take every thread.
const syncWorkers = 16

// PutBatch stores many blobs with one group commit (DESIGN.md, I16) and
// returns their Infos in the order next yielded them. Each blob is checked
// like Put's: an invalid hash fails with ErrInvalidHash, bytes that hash to
// something else with an error wrapping ErrHashMismatch that names the
// blob. Any failure, of reading, of a check or of the disk, fails the whole
// batch and nothing of it is stored: every body is received and checked
// before any blob is published.
//
// When PutBatch returns nil, every blob of the batch is durable, as after
// Put: the identity temp files are made durable together, then renamed,
// then the renames are made durable together, instead of two fsyncs per
// blob. Each of those two points is a syncfs round shared with concurrent
// batches (groupSync), or, without syncfs, an fsync of every temp file and
// of every shard folder touched. The locks of all the batch's hashes are
// held from the first rename to the last sync, so a concurrent Put of one
// of them cannot report it stored before it is durable.
//
// Blobs already stored are still read and hashed (I4) but not rewritten.
// A full disk fails with ErrNoSpace like Put.
func (s *Store) PutBatch(ctx context.Context, next BatchNext) (_ []Info, err error) {
	defer func() { err = noSpace(err) }()
	if err := s.checkSpace(); err != nil {
		return nil, fmt.Errorf("put batch: %w", err)
	}
	g := &group{s: s}
	defer g.cleanup()
	if err := g.receive(ctx, next); err != nil {
		return nil, err
	}
	step("received")
	if err := g.syncTemps(ctx); err != nil {
		return nil, err
	}
	step("synced")
	return g.commit()
}

// group is one PutBatch: its blobs, received into temp files, then
// committed together.
type group struct {
	s     *Store
	items []groupItem
}

// groupItem is one blob of a group. tmp is nil for a blob stored already
// when it arrived (or a repeat within the batch), and once renamed.
type groupItem struct {
	hash    string
	size    int64
	tmp     *os.File
	pending bool
	info    Info // set when the blob is stored or committed
	stored  bool
}

// receive reads every blob of next into its temp file (step 1 of I2 for
// each), checking each against its hash.
func (g *group) receive(ctx context.Context, next BatchNext) error {
	buf := make([]byte, 128<<10)
	headBuf := make([]byte, 0, sniffLen)
	seen := map[string]bool{}
	for i := 1; ; i++ {
		want, body, err := next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("put batch: %w", err)
		}
		if !validHash(want) {
			return fmt.Errorf("put batch: blob %d %.80q: %w", i, want, ErrInvalidHash)
		}
		it := groupItem{hash: want}
		h := sha256.New()
		var dst io.Writer = h
		var head headKeeper
		if !seen[want] && !g.s.Has(want) {
			if it.tmp, err = osfile.CreateTemp(g.s.tmp, "put-"); err != nil {
				return fmt.Errorf("put batch: %w", err)
			}
			head.head = headBuf[:0]
			dst = io.MultiWriter(it.tmp, h, &head)
		}
		seen[want] = true
		g.items = append(g.items, it)
		last := &g.items[len(g.items)-1]
		last.size, err = io.CopyBuffer(dst, ctxio.NewReader(ctx, body), buf)
		if err != nil {
			return fmt.Errorf("put batch: blob %s: read body: %w", want, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return fmt.Errorf("put batch: blob %d: got %s, want %s: %w", i, got, want, ErrHashMismatch)
		}
		if last.tmp != nil {
			if last.pending, err = mayCompress(&head, last.size); err != nil {
				return fmt.Errorf("put batch: blob %s: %w", want, err)
			}
		}
	}
}

// syncTemps makes every temp file of the group durable (step 3 of I2 for
// all at once) and closes them: one shared syncfs round, or without
// syncfs an fsync of each, concurrently (the file system commits them
// together).
func (g *group) syncTemps(ctx context.Context) error {
	var files []*os.File
	for i := range g.items {
		if f := g.items[i].tmp; f != nil {
			files = append(files, f)
		}
	}
	syncClose := func(f *os.File) error {
		err := f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	if batchSyncFS && haveSyncFS {
		syncClose = (*os.File).Close
	}
	if err := parallel(files, syncClose); err != nil {
		return fmt.Errorf("put batch: sync: %w", err)
	}
	if batchSyncFS && haveSyncFS {
		if err := g.s.fsSync.wait(); err != nil {
			return fmt.Errorf("put batch: %w", err)
		}
	}
	return ctx.Err()
}

// commit publishes the group under the locks of all its hashes (taken in
// sorted order, so two batches never wait for each other in a cycle):
// pending markers and identity renames blob by blob, then one syncfs
// round (or one fsync per shard folder), then the Stat cache, accounting
// and compression queue.
func (g *group) commit() ([]Info, error) {
	s := g.s
	var hashes []string
	for _, it := range g.items {
		hashes = append(hashes, it.hash)
	}
	slices.Sort(hashes)
	hashes = slices.Compact(hashes)
	for _, h := range hashes {
		defer s.locks.lock(h)()
	}

	dirs := map[string]bool{}
	var renamed []*groupItem
	markers := &batchMarkers{s: s}
	roomChecked := false
	undo := func() {
		for _, it := range renamed {
			s.removeBestEffort(s.path(it.hash))
			if it.pending {
				s.clearPending(it.hash)
			}
			s.cache.remove(it.hash)
		}
	}
	for i := range g.items {
		it := &g.items[i]
		if it.tmp == nil {
			continue
		}
		info, stored, err := s.stored(it.hash)
		if err == nil && !stored && !roomChecked {
			// Once for the batch: every body is in its temp file, so
			// one measure holds for all (renames and markers take no
			// data blocks).
			err, roomChecked = s.checkSpace(), true
		}
		if err != nil {
			undo()
			return nil, fmt.Errorf("put batch: blob %s: %w", it.hash, err)
		}
		if stored { // a concurrent Put or Import won
			it.info, it.stored = info, true
			continue
		}
		if err := g.place(it, markers); err != nil {
			undo()
			return nil, fmt.Errorf("put batch: blob %s: %w", it.hash, err)
		}
		renamed = append(renamed, it)
		dirs[filepath.Dir(s.path(it.hash))] = true
		step("placed")
	}
	syncDone := syncDirs
	if batchSyncFS && haveSyncFS {
		syncDone = func(map[string]bool) error { return s.fsSync.wait() }
	}
	if err := syncDone(dirs); err != nil {
		undo()
		return nil, fmt.Errorf("put batch: %w", err)
	}
	step("committed")
	for _, it := range renamed {
		info := Info{Hash: it.hash, Size: it.size, Pending: it.pending}
		s.acct.added(info)
		s.cache.add(info)
		if it.pending {
			s.enqueue(it.hash)
		}
		it.info, it.stored = info, true
	}
	if len(renamed) > 0 {
		s.unsynced.durablePublished(s) // keeps the cache copies' marker recent (I11)
	}
	return g.infos()
}

// place is steps 4-7 of I2 for one blob of the group, but for the last
// folder fsync, which commit does once per folder: the pending marker
// (a link to the batch's first one, batchMarkers), stale variants removed
// (their removal made durable before the rename, as publish does), the
// identity renamed into place. On success the temp file is gone (tmp is
// nil).
func (g *group) place(it *groupItem, markers *batchMarkers) error {
	s := g.s
	if err := s.ensureShard(it.hash); err != nil {
		return err
	}
	if it.pending {
		if err := markers.mark(it.hash); err != nil {
			return err
		}
		step("marked")
	}
	if _, err := s.newBlobVariants(it.hash, nil, true); err != nil {
		if it.pending {
			s.clearPending(it.hash)
		}
		return err
	}
	if err := os.Rename(it.tmp.Name(), s.path(it.hash)); err != nil {
		if it.pending {
			s.clearPending(it.hash)
		}
		return fmt.Errorf("publish: %w", err)
	}
	it.tmp = nil
	return nil
}

// batchMarkers makes the pending markers of one batch's blobs: the first
// is created as Put creates it, every later one is a hard link to it, so
// a batch allocates one inode for all its markers instead of one per
// blob, and their removal (once each blob's variants are decided) frees
// that one inode when the last goes. On disk each marker is the same
// empty file under the same name as Put's, so every reader (Stat, the
// compressor, New's sweep) is unchanged. Inode allocation is what the
// file system spends most of a batch's CPU on: it scans the inode bitmap
// past every inode freed in the last minutes (bench/RESULTS.md, "Ingest
// at disk speed").
//
// Durability: a link is an entry in the blob's shard folder, made durable
// by the batch's second sync exactly like a created marker. The batch
// holds the lock of the first blob, so its marker cannot be removed while
// later ones link to it. A link the file system refuses (too many links,
// no hard links) gets a marker of its own, which later ones link to.
type batchMarkers struct {
	s     *Store
	first string // the marker later ones link to; "" before the first
	off   bool   // links are not supported here: create each marker
}

// mark creates the pending marker of hash (its lock held, its shard
// folder made).
func (m *batchMarkers) mark(hash string) error {
	path := m.s.path(hash) + pendingExt
	if m.first != "" && !m.off {
		err := os.Link(m.first, path)
		if err == nil || errors.Is(err, fs.ErrExist) {
			return nil // a marker there already (a crash's) is the same empty file
		}
		m.off = !errors.Is(err, syscall.EMLINK)
	}
	if err := m.s.markPending(hash); err != nil {
		return err
	}
	m.first = path
	return nil
}

// syncDirs fsyncs every folder of dirs, concurrently.
func syncDirs(dirs map[string]bool) error {
	return parallel(slices.Collect(maps.Keys(dirs)), durable.SyncDir)
}

// parallel calls fn for every item, syncWorkers at a time, and returns
// the errors joined.
func parallel[T any](items []T, fn func(T) error) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, syncWorkers)
	)
	for _, it := range items {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(it); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// infos returns the Info of every item, in order; a repeat within the
// batch gets its first occurrence's.
func (g *group) infos() ([]Info, error) {
	byHash := make(map[string]Info, len(g.items))
	for _, it := range g.items {
		if it.stored {
			byHash[it.hash] = it.info
		}
	}
	out := make([]Info, len(g.items))
	for i, it := range g.items {
		info, ok := byHash[it.hash]
		if !ok {
			var err error
			if info, err = g.s.Stat(it.hash); err != nil {
				return nil, fmt.Errorf("put batch: blob %s: %w", it.hash, err)
			}
			g.s.acct.touch(it.hash)
		}
		out[i] = info
	}
	return out, nil
}

// cleanup removes the temp files not renamed into place.
func (g *group) cleanup() {
	for _, it := range g.items {
		if it.tmp != nil {
			it.tmp.Close()
			g.s.removeBestEffort(it.tmp.Name())
		}
	}
}
