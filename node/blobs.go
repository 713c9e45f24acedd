package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"

	"golang.org/x/sync/errgroup"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/internal/countio"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/placement"
	"github.com/atoll-hosting/atoll/serve"
)

// peerAskTimeout bounds one "which of these blobs do you hold" question
// (per started batch of maxHasHashes) to a peer on the write path.
const peerAskTimeout = 3 * time.Second

// ErrUnderReplicated is returned when an upload could not reach a majority
// of its blob's owners. It wraps builder.ErrUnavailable (503); the error
// also wraps blobstore.ErrNoSpace (507) when an owner's disk was full.
var ErrUnderReplicated = fmt.Errorf("%w: blob not stored on a majority of its owners", builder.ErrUnavailable)

// blobs implements builder.Blobs and serve.Blobs on top of placement: a
// blob is written to its owners and counts as stored once a majority of
// them hold it; reads are served from the local disk, fetching a missing
// blob from its owners first (read-through).
type blobs struct{ n *Node }

var (
	_ builder.Blobs = blobs{}
	_ serve.Blobs   = blobs{}
)

// Put stores the blob locally (hash verified, variants computed once),
// then pushes it to its other owners and returns once a majority of the
// owners hold it fsynced. The pushes still in flight finish in the
// background; repair covers any that fail. A node whose disk is below its
// reserve relays the blob to the other owners instead (relay).
func (b blobs) Put(ctx context.Context, hash string, r io.Reader) (blobstore.Info, error) {
	n := b.n
	body := &countio.Reader{R: r}
	info, err := n.blobs.Put(ctx, hash, body)
	if errors.Is(err, blobstore.ErrNoSpace) && body.N == 0 {
		return b.relay(ctx, hash, r, n.noSpaceHere(err))
	}
	if err != nil {
		return info, n.noSpaceHere(err)
	}
	p := n.placement()
	owners := p.Owners(info.Hash)
	if len(owners) == 0 {
		return info, fmt.Errorf("%w: the cluster has no active core node", ErrUnderReplicated)
	}
	stored := 0
	var targets []atoll.Node
	for _, o := range owners {
		if o.ID == n.cfg.ID {
			stored++
		} else {
			targets = append(targets, o)
		}
	}
	if err := n.replicate(ctx, n.blobs, info.Hash, stored, targets, nil); err != nil {
		return info, err
	}
	if !p.Owns(n.cfg.ID, info.Hash) {
		n.confirm(info.Hash) // the owners have it: this copy is only a cache
		n.evictSoon()
	}
	return info, nil
}

// replicate pushes blob hash from src to targets, the owners that lack it,
// and returns once a majority of its owners hold it (stored of them do
// already), or with ErrUnderReplicated. The pushes still in flight finish
// in the background, detached from ctx; done, if set, runs after the last.
func (n *Node) replicate(ctx context.Context, src peer.Exporter, hash string, stored int, targets []atoll.Node, done func()) error {
	p := n.placement()
	need := p.Quorum()
	results := make(chan error, len(targets))
	var pushes sync.WaitGroup
	for _, o := range targets {
		pushes.Add(1)
		n.wg.Go(func() {
			defer pushes.Done()
			// Detached from the request: a push that outlives the answer
			// still completes, bounded by the node's life and a timeout.
			pctx, cancel := context.WithTimeout(n.ctx, 2*time.Minute)
			defer cancel()
			results <- n.peer.Push(pctx, src, n.peerURL(o.APIAddr), hash)
		})
	}
	if done != nil {
		n.wg.Go(func() { pushes.Wait(); done() })
	}
	var errs []error
	for range targets {
		if stored >= need {
			break
		}
		select {
		case err := <-results:
			if err == nil {
				stored++
			} else {
				errs = append(errs, err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if stored < need {
		return fmt.Errorf("%w: %d of %d owners hold blob %s: %w", ErrUnderReplicated, stored, len(p.Owners(hash)), hash, joinedErrors(errs))
	}
	return nil
}

// Relaying. A node whose disk is below its reserve still takes uploads:
// a blob of at most relayMaxBytes is read into memory, checked against its
// hash and pushed to its other owners, and acknowledged once a majority of
// all its owners hold it, as any upload. At most relaySlots blobs are held
// so at once, each until its last push ends; a bigger blob, or one past
// the slots, gets the 507 (and the CLI moves on to its next --api node).
const (
	relayMaxBytes = 32 << 20
	relaySlots    = 4
)

// relay stores blob hash, read from r (nothing read yet), on its owners
// other than this node; noSpace is this node's refusal, returned when the
// blob cannot be relayed.
func (b blobs) relay(ctx context.Context, hash string, r io.Reader, noSpace error) (blobstore.Info, error) {
	n := b.n
	select {
	case n.relaying <- struct{}{}:
	default:
		return blobstore.Info{}, noSpace
	}
	release := func() { <-n.relaying }
	data, err := io.ReadAll(io.LimitReader(r, relayMaxBytes+1))
	if err == nil && len(data) > relayMaxBytes {
		err = fmt.Errorf("%w; a blob over %d bytes is not relayed to the other owners", noSpace, relayMaxBytes)
	}
	if err != nil {
		release()
		return blobstore.Info{}, err
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != hash {
		release()
		return blobstore.Info{}, fmt.Errorf("relay blob %s: %w", hash, blobstore.ErrHashMismatch)
	}
	var targets []atoll.Node
	for _, o := range n.placement().Owners(hash) {
		if o.ID != n.cfg.ID {
			targets = append(targets, o)
		}
	}
	if len(targets) == 0 {
		release()
		return blobstore.Info{}, noSpace // the only owner is this node
	}
	if err := n.replicate(ctx, memBlob(data), hash, 0, targets, release); err != nil {
		return blobstore.Info{}, fmt.Errorf("%w (relayed from %s, whose disk is full)", err, n.cfg.ID)
	}
	return blobstore.Info{Hash: hash, Size: int64(len(data))}, nil
}

// memBlob is a blob's identity bytes in memory, pushed as a transfer
// without variants (the receiver makes them).
type memBlob []byte

func (m memBlob) Export(string) (string, io.ReadCloser, int64, error) {
	return blobstore.BlobHeader{Size: int64(len(m))}.String(), io.NopCloser(bytes.NewReader(m)), int64(len(m)), nil
}

// Stat reports a blob as stored when a majority of its owners hold it (the
// same rule an upload is acknowledged by). On a single node that is the
// local store.
func (b blobs) Stat(ctx context.Context, hash string) (blobstore.Info, error) {
	found, err := b.StatMany(ctx, []string{hash})
	if err != nil {
		return blobstore.Info{}, err
	}
	info, ok := found[hash]
	if !ok {
		return blobstore.Info{}, fmt.Errorf("blob %s: %w", hash, blobstore.ErrNotFound)
	}
	return info, nil
}

// StatMany returns the blobs among hashes that are stored on a majority of
// their owners, with their sizes; it asks each owner once for all the
// hashes it owns.
//
// A blob held by fewer than a majority but by somebody is copied to the
// owners that answered without it before it is counted (heal). An upload
// acknowledged by two of three owners stays acknowledged when one of the
// two stops and the third has not been repaired yet: the publish that
// follows completes the copy instead of refusing the deploy.
func (b blobs) StatMany(ctx context.Context, hashes []string) (map[string]blobstore.Info, error) {
	n := b.n
	p := n.placement()
	held := n.askOwners(ctx, p, hashes)
	if len(p.Cores()) == 0 {
		return map[string]blobstore.Info{}, ctx.Err()
	}
	out, short := n.countStored(p, hashes, held)
	for h, size := range n.heal(ctx, p, short, held.copies, held.lacking, p.Quorum()) {
		out[h] = blobstore.Info{Hash: h, Size: size}
	}
	return out, ctx.Err()
}

// ownerHoldings is what the other owners of some blobs answered: how many
// hold each, its size, and which owners answered without it.
type ownerHoldings struct {
	copies  map[string]int
	sizes   map[string]int64
	lacking map[string][]atoll.Node
}

// askOwners asks every other owner of hashes, once and concurrently, which
// of them it holds. An owner that does not answer within peerAskTimeout
// (per maxHasHashes hashes) counts as holding nothing, and so does one
// marked down after an earlier timeout (peer.Health), which is not asked.
func (n *Node) askOwners(ctx context.Context, p *placement.View, hashes []string) ownerHoldings {
	perNode := map[string][]string{} // owner id -> hashes to ask it about
	for _, h := range hashes {
		for _, o := range p.Owners(h) {
			if o.ID != n.cfg.ID {
				perNode[o.ID] = append(perNode[o.ID], h)
			}
		}
	}
	held := ownerHoldings{
		copies:  make(map[string]int, len(hashes)),
		sizes:   make(map[string]int64, len(hashes)),
		lacking: map[string][]atoll.Node{},
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id, list := range perNode {
		nd, ok := n.nodeByID(id)
		if !ok {
			continue
		}
		wg.Go(func() {
			actx, cancel := context.WithTimeout(ctx, peerAskTimeout*time.Duration(1+len(list)/maxHasHashes))
			defer cancel()
			present, err := n.peer.Has(actx, n.peerURL(nd.APIAddr), list)
			if err != nil {
				if !errors.Is(err, peer.ErrDown) { // logged once when marked down
					n.log.Warn("ask owner for blobs", "node", id, "err", err)
				}
				return // an unreachable owner holds nothing we can count on
			}
			mu.Lock()
			defer mu.Unlock()
			for _, h := range list {
				size, ok := present[h]
				if !ok {
					held.lacking[h] = append(held.lacking[h], nd)
					continue
				}
				held.copies[h]++
				held.sizes[h] = size
			}
		})
	}
	wg.Wait()
	return held
}

// countStored adds this node's own copies to what the other owners hold
// and returns the blobs stored on a quorum of owners, and those held
// somewhere by fewer that enough reachable owners could still complete
// (short: heal's work, with held.copies updated to count this node).
func (n *Node) countStored(p *placement.View, hashes []string, held ownerHoldings) (map[string]blobstore.Info, []string) {
	out := make(map[string]blobstore.Info, len(hashes))
	need := p.Quorum()
	var short []string
	for _, h := range hashes {
		c := held.copies[h]
		local, lerr := n.blobs.Stat(h)
		if lerr == nil {
			held.sizes[h] = local.Size
			if p.Owns(n.cfg.ID, h) {
				c++
			}
		}
		candidates := len(held.lacking[h]) // owners that can be given a copy
		if lerr != nil && p.Owns(n.cfg.ID, h) {
			candidates++ // this one, by fetching it
		}
		switch {
		case c >= need && lerr == nil:
			out[h] = local
		case c >= need:
			out[h] = blobstore.Info{Hash: h, Size: held.sizes[h]}
		case (c > 0 || lerr == nil) && c+candidates >= need:
			held.copies[h] = c
			short = append(short, h)
		}
	}
	return out, short
}

// heal copies each of hashes (held by copies[h] owners, fewer than need)
// to the owners in lacking[h] until need of them hold it, fetching it
// first when this node has no copy (which, on an owner, stores a durable
// copy that counts). It returns the sizes of the blobs that reached need
// owners.
func (n *Node) heal(ctx context.Context, p *placement.View, hashes []string, copies map[string]int, lacking map[string][]atoll.Node, need int) map[string]int64 {
	var (
		mu     sync.Mutex
		healed = map[string]int64{}
	)
	var g errgroup.Group
	g.SetLimit(4)
	for _, h := range hashes {
		g.Go(func() error {
			c := copies[h]
			info, err := n.blobs.Stat(h)
			if errors.Is(err, blobstore.ErrNotFound) {
				if info, err = n.fetch(ctx, h); err == nil && p.Owns(n.cfg.ID, h) {
					c++
				}
			}
			if err != nil {
				n.log.Warn("complete a blob's copies", "blob", h, "err", err)
				return nil
			}
			for _, o := range lacking[h] {
				if c >= need {
					break
				}
				if err := n.peer.Push(ctx, n.blobs, n.peerURL(o.APIAddr), h); err != nil {
					n.log.Warn("complete a blob's copies", "blob", h, "node", o.ID, "err", err)
					continue
				}
				c++
			}
			if c >= need {
				n.log.Info("completed a blob's copies to a majority of its owners", "blob", h, "copies", c)
				mu.Lock()
				healed[h] = info.Size
				mu.Unlock()
			}
			return nil
		})
	}
	g.Wait()
	return healed
}

// Open opens a blob for serving, fetching it from its owners first when
// this node lacks it.
func (b blobs) Open(ctx context.Context, hash, encoding string) (*os.File, int64, error) {
	f, size, err := b.n.blobs.Open(hash, encoding)
	if errors.Is(err, blobstore.ErrNotFound) && !b.n.blobs.Has(hash) {
		if b.n.diskLow() != "" {
			return b.openPassedThrough(ctx, hash, encoding)
		}
		if _, ferr := b.n.fetch(ctx, hash); ferr != nil {
			return nil, 0, ferr
		}
		f, size, err = b.n.blobs.Open(hash, encoding)
	}
	return f, size, err
}

// openPassedThrough is Open on a node whose disk is below its reserve: the
// identity bytes of the blob, fetched into memory and not stored
// (passThrough in fetch.go), as an in-memory file; a blob too big for that
// is streamed from a source through a pipe (stream.go).
func (b blobs) openPassedThrough(ctx context.Context, hash, encoding string) (*os.File, int64, error) {
	if encoding != "" {
		// The edge falls back to the identity bytes.
		return nil, 0, fmt.Errorf("blob %s (%s): not held on a full disk: %w", hash, encoding, blobstore.ErrNotFound)
	}
	if _, err := b.n.fetchForServe(ctx, hash); err != nil {
		return nil, 0, err
	}
	if sc := b.n.staged.readable(hash); sc != nil {
		return memFile(sc.rec.Identity())
	}
	if f, size, err := b.n.blobs.Open(hash, encoding); !errors.Is(err, blobstore.ErrNotFound) {
		return f, size, err // stored after all: room came back
	}
	r, size, err := b.n.streamBlob(hash, 0, -1)
	if err != nil {
		return nil, 0, err
	}
	f, err := b.n.pipeFile(r)
	return f, size, err
}

// statForServe is serve's Stat: local first, then a fetch from the owners
// that returns as soon as the blob is in memory (fetchForServe).
func (b blobs) statForServe(ctx context.Context, hash string) (blobstore.Info, error) {
	info, err := b.n.blobs.Stat(hash)
	if errors.Is(err, blobstore.ErrNotFound) {
		serve.MarkFetched(ctx) // counted as a peer fetch (serve.Stats)
		return b.n.fetchForServe(ctx, hash)
	}
	return info, err
}

// serveBlobs adapts blobs to serve.Blobs, whose Stat is a local read (with
// read-through), not the cluster-wide check builder wants.
type serveBlobs struct{ blobs }

var _ serve.Blobs = serveBlobs{}

func (s serveBlobs) Stat(ctx context.Context, hash string) (blobstore.Info, error) {
	return s.statForServe(ctx, hash)
}
