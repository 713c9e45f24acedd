package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/serve"
)

// Read-through fetches. A node that lacks a blob it must serve or hold
// brings it from the first source that has it: its owners in placement
// order, then any other node.
//
// A copy the node does not own is a cache (blobstore DESIGN.md, I11), and
// the visitor whose request caused the fetch is waiting. A small one (at
// most serve.MaxFetchedSize identity bytes) is therefore received into
// memory, its identity bytes checked against the hash, and handed to the
// edge at once (fetchForServe and serveBlobs.Fetched): the edge checks the
// representation it serves, as it checks what it reads from disk, while the
// copy is written in the background with every check of Import. Until that
// copy is stored, every other caller shares the one in memory: Stat answers
// from it, Open and fetch wait for the copy. The bytes held this way are
// bounded by stagedBytesMax; past it a copy is written before the answer,
// as bigger blobs and the copies the node owns always are.

// stagedBytesMax bounds the bytes of the copies held in memory while they
// are written.
const stagedBytesMax = 16 << 20

// stagedCopy is a small cache copy received into memory and being written.
type stagedCopy struct {
	rec  *blobstore.Received
	info blobstore.Info // rec.Info()
	done chan struct{}  // closed once the copy is stored, or failed
	// Set before done is closed.
	stored blobstore.Info
	err    error
}

// stagedCopies are the copies being written, by hash. The zero value is
// ready.
type stagedCopies struct {
	mu    sync.Mutex
	m     map[string]*stagedCopy
	bytes int64
	// failed keeps the last few copies whose write failed readable by
	// Fetched: the request that caused the fetch may ask for the bytes
	// just after the failure (a full or broken disk), and they are still
	// good to serve. Bounded: failedKept x serve.MaxFetchedSize (x5 with
	// variants).
	failed [failedKept]*stagedCopy
	next   int
}

// failedKept is how many failed copies stagedCopies keeps readable.
const failedKept = 8

// add holds rec in memory until remove, and returns nil when that would
// exceed stagedBytesMax or rec's blob is held already.
func (s *stagedCopies) add(rec *blobstore.Received) *stagedCopy {
	s.mu.Lock()
	defer s.mu.Unlock()
	size := int64(len(rec.Body))
	if s.bytes+size > stagedBytesMax || s.m[rec.Hash] != nil {
		return nil
	}
	if s.m == nil {
		s.m = make(map[string]*stagedCopy)
	}
	sc := &stagedCopy{rec: rec, info: rec.Info(), done: make(chan struct{})}
	s.m[rec.Hash] = sc
	s.bytes += size
	return sc
}

// remove forgets sc once its copy is stored (or failed) and wakes its
// waiters.
func (s *stagedCopies) remove(sc *stagedCopy) {
	s.mu.Lock()
	if s.m[sc.rec.Hash] == sc {
		delete(s.m, sc.rec.Hash)
		s.bytes -= int64(len(sc.rec.Body))
	}
	if sc.err != nil {
		s.failed[s.next] = sc
		s.next = (s.next + 1) % failedKept
	}
	s.mu.Unlock()
	close(sc.done)
}

func (s *stagedCopies) get(hash string) *stagedCopy {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[hash]
}

// readable returns the copy of hash held in memory, being written or
// recently failed to be written.
func (s *stagedCopies) readable(hash string) *stagedCopy {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sc := s.m[hash]; sc != nil {
		return sc
	}
	for _, sc := range s.failed {
		if sc != nil && sc.rec.Hash == hash {
			return sc
		}
	}
	return nil
}

// fetchResult is what one shared fetch found.
type fetchResult struct {
	info   blobstore.Info
	staged *stagedCopy // non-nil: held in memory, its copy being written
}

// fetch brings a blob this node lacks and returns once it is stored.
// Concurrent fetches of one blob share one transfer. Each attempt is
// bounded by FetchTimeout; a source that sends bytes not matching the hash
// is skipped, and so is one marked down (peer.Health) without a wait.
func (n *Node) fetch(ctx context.Context, hash string) (blobstore.Info, error) {
	if low := n.spaceLow(); low != nil && !n.blobs.Has(hash) {
		// A pass-through copy (passThrough) would not be stored.
		return blobstore.Info{}, fmt.Errorf("fetch blob %s: %w", hash, low)
	}
	res, err := n.fetchShared(ctx, hash)
	if err != nil || res.staged == nil {
		return res.info, err
	}
	select {
	case <-res.staged.done:
		return res.staged.stored, res.staged.err
	case <-ctx.Done():
		return blobstore.Info{}, ctx.Err()
	}
}

// fetchForServe is fetch for the edge: it returns as soon as the blob is
// in memory, before its copy is written (serveBlobs.Fetched has the bytes
// meanwhile). The Info lists the variants its source sent, which the edge
// checks before serving one.
func (n *Node) fetchForServe(ctx context.Context, hash string) (blobstore.Info, error) {
	res, err := n.fetchShared(ctx, hash)
	return res.info, err
}

func (n *Node) fetchShared(ctx context.Context, hash string) (fetchResult, error) {
	if !atoll.ValidHash(hash) {
		return fetchResult{}, fmt.Errorf("blob %q: %w", hash, blobstore.ErrInvalidHash)
	}
	ch := n.fetches.DoChan(hash, func() (any, error) {
		// Not tied to the first caller's context: others may wait on it.
		ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
		defer cancel()
		return n.fetchFromSources(ctx, hash)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return fetchResult{}, res.Err
		}
		return res.Val.(fetchResult), nil
	case <-ctx.Done():
		return fetchResult{}, ctx.Err()
	}
}

func (n *Node) fetchFromSources(ctx context.Context, hash string) (fetchResult, error) {
	// The staged copy first: once it is gone, the store has it.
	if sc := n.staged.get(hash); sc != nil {
		return fetchResult{info: sc.info, staged: sc}, nil
	}
	if info, err := n.blobs.Stat(hash); err == nil {
		return fetchResult{info: info}, nil
	}
	low := n.diskLow() != ""
	if sc := n.staged.readable(hash); sc != nil && low {
		return fetchResult{info: sc.info}, nil // passed through a moment ago
	}
	p := n.placement()
	owned := p.Owns(n.cfg.ID, hash)
	var errs []error
	for _, src := range p.Sources(hash, n.cfg.ID) {
		actx, cancel := context.WithTimeout(ctx, n.cfg.FetchTimeout)
		var res fetchResult
		var err error
		if low {
			res, err = n.passThrough(actx, src, hash)
		} else {
			res, err = n.fetchFrom(actx, src, hash, owned)
		}
		cancel()
		n.metrics.fetched(src.ID, err)
		if err == nil {
			return res, nil
		}
		if !errors.Is(err, blobstore.ErrNotFound) && !errors.Is(err, peer.ErrDown) {
			n.log.Warn("fetch blob", "blob", hash, "from", src.ID, "err", err)
		}
		if errors.Is(err, blobstore.ErrHashMismatch) {
			n.reportCorrupt(src, hash) // its copy is corrupt: have it check now (scrub.go)
		}
		errs = append(errs, fmt.Errorf("%s: %w", src.ID, err))
		if ctx.Err() != nil {
			break
		}
	}
	return fetchResult{}, fmt.Errorf("blob %s: %w: no source had it (%v)", hash, blobstore.ErrNotFound, errors.Join(errs...))
}

// Pass-through. A node whose disk is below its reserve (diskLow) cannot
// keep a copy, so a blob it lacks is received into memory (at most
// passThroughMax identity bytes, checked against the hash) and never
// written: the edge serves it from there (Fetched for small files, an
// in-memory file from Open for the others) while it stays among the
// recently failed copies of stagedCopies. A bigger blob is streamed from
// its source to each visitor instead (stream.go): passThrough only learns
// its size.
const passThroughMax = 8 << 20

// passThrough fetches blob hash from src into memory without storing it,
// or only learns its size when it is bigger than passThroughMax.
func (n *Node) passThrough(ctx context.Context, src atoll.Node, hash string) (fetchResult, error) {
	url := n.peerURL(src.APIAddr)
	held, err := n.peer.Has(ctx, url, []string{hash})
	if err != nil {
		return fetchResult{}, err
	}
	size, ok := held[hash]
	if !ok {
		return fetchResult{}, fmt.Errorf("blob %s: %w", hash, blobstore.ErrNotFound)
	}
	if size > passThroughMax {
		// No variants: the edge serves the identity bytes it streams.
		return fetchResult{info: blobstore.Info{Hash: hash, Size: size}}, nil
	}
	info, rec, err := n.peer.FetchSmall(ctx, n.blobs, url, hash, passThroughMax)
	if err != nil || rec == nil {
		return fetchResult{info: info}, err
	}
	sc := n.staged.add(rec)
	if sc == nil {
		return fetchResult{info: info}, nil // no room in memory either: streamed
	}
	sc.err = fmt.Errorf("blob %s: not stored: %s", hash, n.diskLow()) // kept readable, not written
	n.staged.remove(sc)
	return fetchResult{info: sc.info}, nil
}

// fetchFrom asks one source for the blob. A copy this node owns is stored
// durably before it returns; a cache copy is stored without fsync (I11),
// and a small one is held in memory while it is written.
func (n *Node) fetchFrom(ctx context.Context, src atoll.Node, hash string, owned bool) (fetchResult, error) {
	url := n.peerURL(src.APIAddr)
	if owned {
		info, err := n.peer.Fetch(ctx, n.blobs, url, hash)
		return fetchResult{info: info}, err
	}
	stored := func() {
		if n.placement().Owns(src.ID, hash) {
			n.confirm(hash)
		}
		n.evictSoon()
	}
	info, rec, err := n.peer.FetchSmall(ctx, n.blobs, url, hash, serve.MaxFetchedSize)
	if err != nil {
		return fetchResult{}, err
	}
	if rec == nil {
		stored()
		return fetchResult{info: info}, nil
	}
	var sc *stagedCopy
	if n.ctx.Err() == nil { // closing: no more background work
		sc = n.staged.add(rec)
	}
	if sc == nil {
		info, err := rec.Store(ctx, n.blobs)
		if err != nil {
			return fetchResult{}, err
		}
		stored()
		return fetchResult{info: info}, nil
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
		defer cancel()
		sc.stored, sc.err = rec.Store(ctx, n.blobs)
		if sc.err != nil {
			n.log.Warn("store a fetched cache copy", "blob", hash, "err", sc.err)
		} else {
			stored()
		}
		n.staged.remove(sc)
	}()
	return fetchResult{info: sc.info, staged: sc}, nil
}

// Fetched hands the edge the bytes of a blob held in memory while its copy
// is written, or just after writing it failed (serve.FetchedBlobs): the identity bytes, checked against the
// hash, or a variant as its source sent it, which the edge checks.
func (s serveBlobs) Fetched(hash, coding string) ([]byte, bool) {
	sc := s.n.staged.readable(hash)
	if sc == nil {
		return nil, false
	}
	if coding == "" {
		return sc.rec.Identity(), true
	}
	return sc.rec.Variant(coding)
}

var _ serve.FetchedBlobs = serveBlobs{}
