package blobstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atoll-hosting/atoll/internal/osfile"
)

// Background compression (DESIGN.md, I2 and I14). Put acknowledges a blob
// once its identity bytes are durable; its variants are made afterwards by
// a few background workers, so an upload waits for the disk, not for three
// compression passes. What must hold:
//
//   - a blob acknowledged but not yet compressed is compressed later, even
//     across a crash: its pending marker <dir>/ab/<hash>.pending is created
//     before the identity file is renamed into place, and the folder fsync
//     that makes the identity durable makes the marker durable too. New
//     queues every blob that has a marker;
//   - a variant becomes visible only complete and fsynced (temp file,
//     fsync, rename, folder fsync), and only then is the marker removed;
//   - readers notice new variants: the Stat cache entry is replaced, and
//     Config.OnVariants is called so that memory caches above the store
//     (the edge's) drop what they learned of the blob without them;
//   - variants are made only of intact bytes: before they are published
//     the identity file is hashed again, and on a mismatch none is
//     published and Config.OnCorrupt is called.

// pendingExt is the suffix of a blob's pending marker: an empty file in the
// blob's shard folder saying its variants are still to be made.
const pendingExt = ".pending"

// compressor is the queue of blobs waiting for their variants and the
// workers that make them.
type compressor struct {
	mu    sync.Mutex
	cond  *sync.Cond // signalled when the queue grows, shrinks or closes
	queue []queuedBlob
	// waiting holds the blobs whose variants another node is expected to
	// send (AcceptVariants) until their due time (queuedBlob.at), in the
	// order they were queued; promoteLoop moves those still waiting at
	// their due time to queue. Entries of blobs settled meanwhile stay in
	// queue and waiting until reached: state, not the slices, says what
	// is pending.
	waiting []queuedBlob
	wake    chan struct{} // a blob joined waiting (capacity 1)
	// state has an entry for every blob pending here: queuedState,
	// waitingState, busyState or busyAgain.
	state map[string]uint8
	// lastQueued is when a blob was last queued (Unix ns): a sign that
	// uploads are coming in, which workers give way to (compressLoop).
	lastQueued atomic.Int64
	busy       int // blobs being compressed
	// compressed counts the blobs whose variants this store made itself
	// (compression passes run), accepted those whose variants it took
	// from another node (AcceptVariants).
	compressed atomic.Int64
	accepted   atomic.Int64
	closed     bool
	ctx        context.Context
	cancel     context.CancelFunc
	workers    sync.WaitGroup
}

// queuedBlob is a blob waiting for its variants, since at.
type queuedBlob struct {
	hash string
	at   time.Time
}

// Workers give way to ingest: while blobs keep being queued (an upload is
// under way), a worker waits until none was queued for ingestQuiet, so that
// uploads get the CPU and the disk first and a deploy is acknowledged
// sooner; but it never lets the oldest queued blob wait longer than
// maxDeferral, so a node that ingests without pause still compresses.
const (
	ingestQuiet = 250 * time.Millisecond
	maxDeferral = 30 * time.Second
)

// States of a blob in compressor.state. busyAgain: queued again while
// being compressed (a Delete and a new Put meanwhile), so compressed again.
// waitingState: its variants are expected from another node until its
// due time (Config.VariantsWait).
const (
	queuedState = 1 + iota
	busyState
	busyAgain
	waitingState
)

// compressWorkers returns the number of background workers for cfg: half
// the CPUs by default, so compression never takes every core from serving
// and ingest; each worker runs one compression pass at a time.
func compressWorkers(cfg Config) int {
	switch {
	case cfg.CompressWorkers > 0:
		return cfg.CompressWorkers
	case cfg.CompressWorkers < 0:
		return 0
	}
	return max(1, runtime.GOMAXPROCS(0)/2)
}

// startCompressor starts the workers and queues the blobs found pending.
func (s *Store) startCompressor(workers int, pending []string) {
	c := &s.comp
	c.cond = sync.NewCond(&c.mu)
	c.state = make(map[string]uint8)
	c.wake = make(chan struct{}, 1)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	// Blobs a crash left pending are compressed here: the node's view of
	// who compresses them (Config.VariantsWait) is not known this early.
	for _, h := range pending {
		s.queueBlob(h, 0)
	}
	if len(pending) > 0 {
		s.log.Info("queued blobs whose variants were not made before the last stop", "count", len(pending))
	}
	for range workers {
		c.workers.Go(func() { s.compressLoop() })
	}
	if workers > 0 {
		c.workers.Go(func() { s.promoteLoop() })
	}
}

// enqueue queues a blob just published pending for its variants, once:
// to be compressed here, or first to wait for them from another node for
// as long as Config.VariantsWait says.
func (s *Store) enqueue(hash string) {
	var wait time.Duration
	if s.variantsWait != nil {
		wait = s.variantsWait(hash)
	}
	s.queueBlob(hash, wait)
}

// queueBlob queues a blob for compression here, after wait if positive
// (waitingState). A waiting blob queued again with no wait is compressed
// now: its expected variants were refused.
func (s *Store) queueBlob(hash string, wait time.Duration) {
	c := &s.comp
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	now := time.Now()
	c.lastQueued.Store(now.UnixNano())
	switch c.state[hash] {
	case 0:
		if wait > 0 {
			c.state[hash] = waitingState
			c.waiting = append(c.waiting, queuedBlob{hash, now.Add(wait)})
			select {
			case c.wake <- struct{}{}:
			default:
			}
			return
		}
		c.state[hash] = queuedState
		c.queue = append(c.queue, queuedBlob{hash, now})
		c.cond.Broadcast()
	case waitingState:
		if wait <= 0 {
			c.state[hash] = queuedState
			c.queue = append(c.queue, queuedBlob{hash, now})
			c.cond.Broadcast()
		}
	case busyState:
		c.state[hash] = busyAgain
	}
}

// settle forgets a queued or waiting blob whose variants were just
// published by another path (AcceptVariants, or a pass that raced with
// it); a busy one is the worker's to forget.
func (c *compressor) settle(hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state[hash] {
	case queuedState, waitingState:
		delete(c.state, hash)
		c.cond.Broadcast()
	}
}

// promoteLoop moves each waiting blob, at its due time, to the queue of
// blobs compressed here, unless its variants arrived meanwhile: nothing
// stays uncompressed because the node expected to send its variants is
// down or slow.
func (s *Store) promoteLoop() {
	c := &s.comp
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.mu.Lock()
		now := time.Now()
		for len(c.waiting) > 0 && !c.waiting[0].at.After(now) {
			w := c.waiting[0]
			c.waiting[0] = queuedBlob{}
			c.waiting = c.waiting[1:]
			if c.state[w.hash] == waitingState {
				c.state[w.hash] = queuedState
				c.queue = append(c.queue, queuedBlob{w.hash, now})
				c.cond.Broadcast()
			}
		}
		next := time.Hour
		if len(c.waiting) > 0 {
			next = c.waiting[0].at.Sub(now)
		}
		c.mu.Unlock()
		timer.Reset(next)
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
		case <-timer.C:
		}
	}
}

func (s *Store) compressLoop() {
	c := &s.comp
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && !c.closed {
			c.cond.Wait()
		}
		if c.closed {
			c.mu.Unlock()
			return
		}
		if wait := c.deferral(); wait > 0 {
			c.mu.Unlock()
			time.Sleep(wait)
			continue
		}
		hash := c.queue[0].hash
		c.queue[0] = queuedBlob{}
		c.queue = c.queue[1:]
		if c.state[hash] != queuedState {
			c.mu.Unlock() // settled since it was queued
			continue
		}
		c.busy++
		c.state[hash] = busyState
		c.mu.Unlock()

		if err := s.compressPending(c.ctx, hash); err != nil && c.ctx.Err() == nil {
			// The marker stays: the next New tries again.
			s.log.Warn("compress blob in the background", "blob", hash, "err", err)
		}

		c.mu.Lock()
		c.busy--
		if c.state[hash] == busyAgain {
			c.state[hash] = queuedState
			c.queue = append(c.queue, queuedBlob{hash, time.Now()})
		} else {
			delete(c.state, hash)
		}
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

// deferral is how long a worker should wait before it takes the head of
// the queue (see ingestQuiet); c.mu is held and the queue is not empty.
func (c *compressor) deferral() time.Duration {
	quiet := ingestQuiet - time.Since(time.Unix(0, c.lastQueued.Load()))
	if quiet <= 0 || time.Since(c.queue[0].at) >= maxDeferral {
		return 0
	}
	return quiet
}

// PendingCompression returns the number of blobs still without their
// variants: queued for background compression, being compressed, or
// waiting for another node to send them.
func (s *Store) PendingCompression() int {
	c := &s.comp
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.state)
}

// CompressStats says how many blobs this store compressed itself and how
// many got their variants from another node (AcceptVariants), since New.
type CompressStats struct {
	Compressed int64
	Accepted   int64
}

// CompressStats returns the counters of background compression.
func (s *Store) CompressStats() CompressStats {
	return CompressStats{Compressed: s.comp.compressed.Load(), Accepted: s.comp.accepted.Load()}
}

// WaitCompressed waits until no blob is queued for background compression,
// being compressed or waiting for its variants from another node, or ctx
// is done. Blobs put meanwhile are waited for too. With
// Config.CompressWorkers < 0 it returns at once.
func (s *Store) WaitCompressed(ctx context.Context) error {
	c := &s.comp
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.state) > 0 && !c.closed && c.workersRunning() {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.cond.Wait()
	}
	return ctx.Err()
}

// workersRunning reports whether a store has workers; c.mu is held.
func (c *compressor) workersRunning() bool { return c.cancel != nil && c.ctx.Err() == nil }

// Close stops the background compression: a pass in progress is abandoned
// (its temp files removed), and blobs still pending keep their markers, so
// the next New queues them again. It also waits for the syncer of cache
// copies to finish its round. Reads and writes still work after Close,
// but new blobs are only compressed by the next store opened on the folder.
func (s *Store) Close() error {
	c := &s.comp
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.cancel()
	c.cond.Broadcast()
	c.mu.Unlock()
	c.workers.Wait()
	s.unsynced.close()
	return nil
}

// Compress makes the variants of a pending blob now, in the caller's
// goroutine, as a background worker would (and calls Config.OnVariants
// likewise). A blob that is not pending (compressed already, or not
// stored) is left as it is. It is how a store opened with no workers
// (Config.CompressWorkers < 0) gets variants made.
func (s *Store) Compress(ctx context.Context, hash string) error {
	if !validHash(hash) {
		return fmt.Errorf("compress blob %q: %w", hash, ErrInvalidHash)
	}
	if err := s.compressPending(ctx, hash); err != nil {
		return fmt.Errorf("compress blob %s: %w", hash, err)
	}
	return nil
}

// markPending creates the pending marker of a blob about to be published;
// the caller holds its lock and has made sure its shard folder exists. The
// marker is empty: the folder fsync of publish makes it durable.
func (s *Store) markPending(hash string) error {
	f, err := os.OpenFile(s.path(hash)+pendingExt, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create pending marker: %w", err)
	}
	return f.Close()
}

// mayCompress reports whether the variants of src, a blob of size bytes,
// are worth trying: what compression skips at once (tiny, or content that
// sniffs as compressed already) gets no marker.
func mayCompress(src io.ReaderAt, size int64) (bool, error) {
	if size < minCompressSize {
		return false, nil
	}
	head := make([]byte, sniffLen)
	n, err := src.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return !alreadyCompressed(head[:n]), nil
}

// sniffLen is how many bytes of a blob's start mayCompress sniffs.
const sniffLen = 512

// headKeeper is an io.Writer that keeps the first sniffLen bytes written
// to it: a body being received is sniffed as it streams in (mayCompress
// of its head) instead of read back from its temp file.
type headKeeper struct {
	head []byte
}

func (k *headKeeper) Write(p []byte) (int, error) {
	if n := sniffLen - len(k.head); n > 0 {
		k.head = append(k.head, p[:min(n, len(p))]...)
	}
	return len(p), nil
}

// ReadAt reads from the bytes kept, for mayCompress.
func (k *headKeeper) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(k.head).ReadAt(p, off)
}

// compressPending makes the variants of a pending blob and publishes them
// (DESIGN.md, I14): each variant is complete and fsynced before its
// rename, the folder is fsynced before the marker is removed, so a crash
// at any point leaves the blob whole, with the variants published so far
// (each complete), and its marker if any variant may be missing.
func (s *Store) compressPending(ctx context.Context, hash string) error {
	if !s.isPending(hash) {
		return nil // decided meanwhile: its variants arrived from a peer
	}
	f, err := osfile.Open(s.path(hash))
	if errors.Is(err, fs.ErrNotExist) {
		s.clearPending(hash) // deleted meanwhile
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	variants, err := s.makeVariants(ctx, f, hash)
	defer s.removeTemps(variants)
	if err != nil {
		return err
	}
	_, err = s.installVariants(hash, variants)
	return err
}

// makeVariants is step 1 of I14: it writes the variants of f, the identity
// file of hash, worth keeping to fsynced temp files, with no lock held.
// Variants carry whatever the identity bytes are now, so when there is
// something to publish the identity is hashed again: rot since the upload
// must not spread into them (and a blob not worth compressing is not read
// twice). On a mismatch Config.OnCorrupt is called. The temp files are the
// caller's to remove, also on error.
func (s *Store) makeVariants(ctx context.Context, f *os.File, hash string) ([]variantFile, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	variants, err := s.compressSerial(ctx, f, fi.Size())
	if err != nil || len(variants) == 0 {
		return variants, err
	}
	if err := checkIdentity(f, fi.Size(), hash); err != nil {
		if errors.Is(err, ErrHashMismatch) && s.onCorrupt != nil {
			s.onCorrupt(hash)
		}
		return variants, err
	}
	return variants, nil
}

// installVariants is steps 2 and 3 of I14, under the per-hash lock: unless
// the marker is gone (a Delete, Quarantine, an earlier pass or variants
// from a peer won), it publishes variants as the blob's only variant
// files, removes the marker once they are durable, and tells the readers
// (Stat cache, accounting when a variant changed, the queue,
// Config.OnVariants) that the blob is no longer pending. installed is
// whether it did.
func (s *Store) installVariants(hash string, variants []variantFile) (installed bool, err error) {
	unlock := s.locks.lock(hash)
	defer unlock()
	if !s.stillPending(hash) {
		return false, nil
	}
	_, changed, err := publishVariants(s.path(hash), variants, true, true)
	if err != nil {
		return false, err
	}
	if err := s.settleVariants(hash, changed); err != nil {
		return false, err
	}
	return true, nil
}

// stillPending reports, under hash's lock, whether variants may be
// installed for it: its marker and its identity are there. A marker
// whose identity is gone is removed.
func (s *Store) stillPending(hash string) bool {
	base := s.path(hash)
	if _, err := os.Lstat(base + pendingExt); errors.Is(err, fs.ErrNotExist) {
		return false // deleted (and maybe stored again, with variants), or decided, meanwhile
	}
	if _, err := os.Lstat(base); errors.Is(err, fs.ErrNotExist) {
		s.clearPending(hash)
		return false
	}
	return true
}

// settleVariants ends an install, under hash's lock, once the variants
// published are durable: the marker is removed, and the readers (Stat
// cache, accounting when a variant changed, the queue, Config.OnVariants)
// learn that the blob is no longer pending.
func (s *Store) settleVariants(hash string, changed bool) error {
	// The variants are durable: the marker may go. Its removal needs no
	// fsync; if a crash brings it back, the blob is compressed again.
	base := s.path(hash)
	if err := os.Remove(base + pendingExt); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove pending marker: %w", err)
	}
	// Even with no variant kept, Info.Pending has changed: readers learn
	// that the compressor has decided.
	info, err := s.statDisk(hash)
	if err != nil {
		return err
	}
	// remove bumps the generation: a Stat that read the disk before the
	// renames cannot put its variant-less, pending Info back (I6).
	s.cache.remove(hash)
	s.cache.add(info)
	if changed {
		s.acct.added(info)
	}
	s.comp.settle(hash)
	if s.onVariants != nil {
		s.onVariants(hash)
	}
	return nil
}

// isPending reports whether the pending marker of hash exists (an error
// other than its absence counts as present: compressing again is safe).
func (s *Store) isPending(hash string) bool {
	_, err := os.Lstat(s.path(hash) + pendingExt)
	return !errors.Is(err, fs.ErrNotExist)
}

// checkIdentity hashes the size bytes of src, the identity file of hash.
func checkIdentity(src io.ReaderAt, size int64, hash string) error {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(src, 0, size)); err != nil {
		return fmt.Errorf("check blob %s: %w", hash, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		return fmt.Errorf("check blob %s before compressing: identity bytes hash to %s: %w", hash, got, ErrHashMismatch)
	}
	return nil
}

// clearPending removes a marker whose blob is gone.
func (s *Store) clearPending(hash string) {
	s.removeBestEffort(s.path(hash) + pendingExt)
}

// compressSerial is compress with the passes one after the other: a
// background worker takes one core at most.
func (s *Store) compressSerial(ctx context.Context, src *os.File, size int64) ([]variantFile, error) {
	ok, err := s.worthTrying(src, size)
	if err != nil || !ok {
		return nil, err
	}
	s.comp.compressed.Add(1)
	var variants []variantFile
	for _, e := range encodings {
		v, kept, err := s.writeVariant(ctx, src, size, e.name)
		if err != nil {
			s.removeTemps(variants)
			return nil, err
		}
		if kept {
			variants = append(variants, v)
		}
	}
	return variants, nil
}
