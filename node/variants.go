package node

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/placement"
)

// Compressed variants once per blob in the cluster (blobstore DESIGN.md,
// I15). A blob reaches its owners bare (an upload is acknowledged before
// its variants exist), and compressing it on every owner cost R times the
// CPU. So one owner compresses it, the compressing owner: the first of its
// owners in placement order that this node does not know to be down. That
// choice needs no message: every node computes it from the replicated node
// table, it spreads the work over the cores by hash instead of loading
// whichever node the CLI uploads to, and it is the node fetches ask first
// (placement.Sources), so cache copies fetched once the variants exist get
// them with the transfer. It then sends the variants it made
// (peer.PushVariants) to the blob's other owners and to every edge (an
// edge prefetches each published deploy, so it holds the blob already or
// soon), which hold the blob pending and wait for them up to
// Config.VariantsWait before compressing it themselves: the compressing
// owner may be down or slow, and nothing stays uncompressed for longer
// than that (visitors get gzip made per request meanwhile,
// serve/onthefly.go). A core that caches a blob it does not own is sent
// nothing and compresses its copy at once: it serves visitors too.
//
// It is used from feature level LevelDeployBase: every node of such a
// cluster knows the variants call. Below it (a rolling upgrade), every
// owner compresses its own copy, as older nodes do.
//
// From feature level LevelVariantBatches the variants travel in batches
// (peer.PushVariantsBatch): one queue per target node, drained by two
// senders at most, each request taking what was queued meanwhile, so
// the receiver pays one request and two group syncs per batch instead of
// a request, an fsync per variant and a folder fsync per blob. Below it
// each blob's variants are one request (peer.PushVariants).

// variantsPushSlots bounds the per-blob variant transfers in flight from
// this node (below LevelVariantBatches).
const variantsPushSlots = 4

// A batch of variants holds at most this many blobs, and variants of at
// most this many bytes (a blob's own variants above it go alone, by the
// per-blob call), within the receiver's limits (peer.MaxVariantsBatch*).
// Up to variantsInFlight batches are in flight to one node: the receiver
// checks one while it reads the next, and a batch's syncs overlap the
// next one's transfer.
const (
	variantsBatchBlobs = 128
	variantsBatchBytes = 8 << 20
	variantsInFlight   = 2
)

// variantsRetry is when an edge that did not hold a blob yet is sent its
// variants again, after each answer of that kind: it may be fetching the
// blob bare just then (an edge's prefetch can take it from the owner
// before its variants exist), and would otherwise wait VariantsWait and
// compress it itself.
var variantsRetry = []time.Duration{2 * time.Second, 10 * time.Second, 30 * time.Second}

// variantsResend is when the blobs of a batch whose request failed (the
// receiver busy past the transport's wait for an answer, a connection
// lost) are sent again, after each failure; then their receiver
// compresses them itself when its wait ends. A batch sent again changes
// nothing for the blobs that took it the first time.
var variantsResend = []time.Duration{5 * time.Second, 20 * time.Second}

// variantsShipping is the state of the variants this node sends.
type variantsShipping struct {
	slots        chan struct{}
	sent, failed atomic.Int64
	batches      atomic.Int64 // batch requests answered

	mu     sync.Mutex
	queues map[string]*variantsQueue // by target node ID
}

// variantsQueue is what is still to be sent to one node.
type variantsQueue struct {
	node    atoll.Node
	ready   []shipItem
	later   []shipItem // due at their time (variantsRetry)
	running int        // senders draining the queue
}

// shipItem is one blob's variants to send; tries counts the answers that
// the target lacked the blob, failures the requests that failed.
type shipItem struct {
	hash     string
	tries    int
	failures int
	due      time.Time
}

// compressingOwner returns the owner of hash that makes its variants: the
// first owner in placement order not down; false when every owner is.
func compressingOwner(p *placement.View, hash string, down func(atoll.Node) bool) (atoll.Node, bool) {
	for _, o := range p.Owners(hash) {
		if !down(o) {
			return o, true
		}
	}
	return atoll.Node{}, false
}

// peerDown reports whether calls to o are skipped (peer.Health).
func (n *Node) peerDown(o atoll.Node) bool {
	if o.ID == n.cfg.ID {
		return false
	}
	_, down := n.peer.Health.Down(o.APIAddr)
	return down
}

// variantsOnce reports whether blobs are compressed once in the cluster
// now: the node is up (its stores and placement are), the cluster is at
// the level that brings the variants call, and waiting is configured.
func (n *Node) variantsOnce() bool {
	select {
	case <-n.edgeUp:
	default:
		return false // starting: blobs are compressed here
	}
	return n.cfg.VariantsWait > 0 && n.store.FeatureLevel() >= atoll.LevelDeployBase && n.placement() != nil
}

// variantsWait is the blob store's VariantsWait: an owner that does not
// compress a blob, and an edge, wait Config.VariantsWait for its
// variants. The compressing owner, and a core that does not own the blob,
// compress it at once.
func (n *Node) variantsWait(hash string) time.Duration {
	if !n.variantsOnce() {
		return 0
	}
	p := n.placement()
	if n.cfg.Role != atoll.RoleEdge && !p.Owns(n.cfg.ID, hash) {
		return 0
	}
	if c, ok := compressingOwner(p, hash, n.peerDown); !ok || c.ID == n.cfg.ID {
		return 0
	}
	return n.cfg.VariantsWait
}

// variantsTargets returns the nodes the compressing owner of hash sends
// its variants to: the other owners, and every active edge.
func (n *Node) variantsTargets(p *placement.View, hash string) []atoll.Node {
	var out []atoll.Node
	for _, o := range p.Owners(hash) {
		if o.ID != n.cfg.ID {
			out = append(out, o)
		}
	}
	for _, nd := range p.All() {
		if nd.Role == atoll.RoleEdge && nd.State == atoll.NodeActive && nd.ID != n.cfg.ID {
			out = append(out, nd)
		}
	}
	return out
}

// shipVariants sends the variants this node made of a blob it compresses
// for the cluster to the blob's other owners and the edges, in the
// background. An owner that lacks the blob gets all of it (peer.Push, with
// the variants); an edge that lacks it gets nothing (it fetches the blob,
// with them, if it needs it). One that refuses or does not answer
// compresses its own copy when its wait ends.
func (n *Node) shipVariants(hash string) {
	if !n.variantsOnce() || n.ctx.Err() != nil {
		return
	}
	p := n.placement()
	if c, ok := compressingOwner(p, hash, n.peerDown); !ok || c.ID != n.cfg.ID {
		return
	}
	batches := n.store.FeatureLevel() >= atoll.LevelVariantBatches
	for _, o := range n.variantsTargets(p, hash) {
		if batches {
			n.queueVariants(o, shipItem{hash: hash})
			continue
		}
		n.wg.Go(func() {
			select {
			case n.variants.slots <- struct{}{}:
			case <-n.ctx.Done():
				return
			}
			defer func() { <-n.variants.slots }()
			ctx, cancel := context.WithTimeout(n.ctx, 2*time.Minute)
			defer cancel()
			n.pushedVariants(o, hash, n.pushVariants(ctx, o, hash, o.Role != atoll.RoleEdge)) // an edge that lacks it: nothing to do
		})
	}
}

// pushVariants sends the variants of hash to node o or, when o does not
// hold the blob and whole is set (an owner's push still in flight, or
// lost), the whole blob. The whole blob may meet there a bare copy that
// arrived meanwhile, which keeps it and waits for variants: so they are
// sent once more (a no-op for a copy that took them with the blob).
func (n *Node) pushVariants(ctx context.Context, o atoll.Node, hash string, whole bool) error {
	url := n.peerURL(o.APIAddr)
	err := n.peer.PushVariants(ctx, n.blobs, url, hash)
	var pe *peer.Error
	if !whole || !errors.As(err, &pe) || !errors.Is(err, blobstore.ErrNotFound) {
		return err
	}
	if err := n.peer.Push(ctx, n.blobs, url, hash); err != nil {
		return err
	}
	return n.peer.PushVariants(ctx, n.blobs, url, hash)
}

// queueVariants queues a blob's variants for node o, and starts the
// queue's sender unless it runs.
func (n *Node) queueVariants(o atoll.Node, it shipItem) {
	v := &n.variants
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.queues == nil {
		v.queues = map[string]*variantsQueue{}
	}
	q := v.queues[o.ID]
	if q == nil {
		q = &variantsQueue{node: o}
		v.queues[o.ID] = q
	}
	q.node = o
	if it.due.IsZero() {
		q.ready = append(q.ready, it)
	} else {
		q.later = append(q.later, it)
	}
	if q.running < variantsInFlight {
		q.running++
		n.wg.Go(func() { n.sendVariantsLoop(q) })
	}
}

// sendVariantsLoop sends q's variants, a batch at a time, until nothing is
// left to send or the node stops; variantsInFlight of them may run.
func (n *Node) sendVariantsLoop(q *variantsQueue) {
	for {
		to, batch, alone, wait, ok := n.nextVariantsBatch(q)
		if !ok {
			return
		}
		if wait > 0 {
			select {
			case <-n.ctx.Done():
				n.variants.mu.Lock()
				q.running--
				n.variants.mu.Unlock()
				return
			case <-time.After(wait):
			}
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, 2*time.Minute)
		for _, it := range alone {
			n.pushVariantsAlone(ctx, to, it)
		}
		if len(batch) > 0 {
			n.sendVariantsBatch(ctx, to, batch)
		}
		cancel()
	}
}

// nextVariantsBatch takes the next batch of q, and the node it goes to
// (as last queued): the blobs ready (and those
// due again) within the batch's limits, and the blobs whose variants are
// too large for a batch, sent alone. With none ready, wait is how long
// until the first one due; ok is false when nothing is left (the sender
// ends) or the node stops.
func (n *Node) nextVariantsBatch(q *variantsQueue) (to atoll.Node, batch, alone []shipItem, wait time.Duration, ok bool) {
	v := &n.variants
	v.mu.Lock()
	defer v.mu.Unlock()
	to = q.node
	if n.ctx.Err() != nil {
		q.running--
		return to, nil, nil, 0, false
	}
	now := time.Now()
	next := time.Duration(0)
	kept := q.later[:0]
	for _, it := range q.later {
		if d := it.due.Sub(now); d > 0 {
			kept = append(kept, it)
			if next == 0 || d < next {
				next = d
			}
			continue
		}
		q.ready = append(q.ready, it)
	}
	clear(q.later[len(kept):])
	q.later = kept
	if len(q.ready) == 0 {
		if len(q.later) == 0 || q.running > 1 {
			q.running-- // one sender is enough to wait for those due later
			return to, nil, nil, 0, false
		}
		return to, nil, nil, next, true
	}
	var bytes int64
	i := 0
	for ; i < len(q.ready) && len(batch) < variantsBatchBlobs; i++ {
		it := q.ready[i]
		size := n.variantBytes(it.hash)
		if size > variantsBatchBytes {
			alone = append(alone, it)
			continue
		}
		if len(batch) > 0 && bytes+size > variantsBatchBytes {
			break
		}
		bytes += size
		batch = append(batch, it)
	}
	q.ready = append(q.ready[:0], q.ready[i:]...)
	return to, batch, alone, 0, true
}

// variantBytes returns the bytes of the variants this node holds of hash
// (0 when it holds none, or not the blob).
func (n *Node) variantBytes(hash string) int64 {
	info, err := n.blobs.Stat(hash)
	if err != nil {
		return 0
	}
	var size int64
	for _, v := range info.Variants {
		size += v.Size
	}
	return size
}

// pushVariantsAlone sends the variants of one blob too large for a batch
// by the per-blob call.
func (n *Node) pushVariantsAlone(ctx context.Context, o atoll.Node, it shipItem) {
	if n.pushedVariants(o, it.hash, n.pushVariants(ctx, o, it.hash, o.Role != atoll.RoleEdge)) {
		n.retryVariants(o, it)
	}
}

// pushedVariants counts the outcome err of a per-blob push of hash's
// variants to node o, and reports whether o is an edge that lacks the
// blob (not counted: the caller decides whether to try again).
func (n *Node) pushedVariants(o atoll.Node, hash string, err error) (edgeLacks bool) {
	switch {
	case err == nil:
		n.variants.sent.Add(1)
	case o.Role == atoll.RoleEdge && errors.Is(err, blobstore.ErrNotFound):
		return true
	default:
		n.variants.failed.Add(1)
		if !errors.Is(err, peer.ErrDown) {
			n.log.Warn("send compressed variants to a holder (it compresses its own copy)", "blob", hash, "node", o.ID, "err", err)
		}
	}
	return false
}

// sendVariantsBatch sends one batch of variants to node o and acts on
// each answer: an owner that lacks the blob is sent all of it (its push
// may still be in flight, or lost) and the variants once more, as
// pushVariants does; an edge that lacks it is sent them again later
// (variantsRetry). One that refused them, or a failed request, leaves the
// receivers to compress their own copies when their wait ends.
func (n *Node) sendVariantsBatch(ctx context.Context, o atoll.Node, batch []shipItem) {
	edge := o.Role == atoll.RoleEdge
	hashes := make([]string, len(batch))
	for i, it := range batch {
		hashes[i] = it.hash
	}
	url := n.peerURL(o.APIAddr)
	results, err := n.peer.PushVariantsBatch(ctx, n.blobs, url, hashes)
	if errors.Is(err, peer.ErrNoBatch) {
		for _, it := range batch {
			n.pushVariantsAlone(ctx, o, it)
		}
		return
	}
	if err != nil {
		given := 0
		for _, it := range batch {
			if errors.Is(err, peer.ErrDown) || it.failures >= len(variantsResend) {
				n.variants.failed.Add(1)
				given++
				continue
			}
			it.due = time.Now().Add(variantsResend[it.failures])
			it.failures++
			n.queueVariants(o, it)
		}
		if !errors.Is(err, peer.ErrDown) {
			n.log.Warn("send a batch of compressed variants (sent again later; the holder compresses those given up)", "blobs", len(batch), "given_up", given, "node", o.ID, "err", err)
		}
		return
	}
	n.variants.batches.Add(1)
	for i, r := range results {
		it := batch[i]
		switch r.Status {
		case peer.VariantsStored:
			n.variants.sent.Add(1)
		case peer.VariantsMissing:
			if edge {
				n.retryVariants(o, it)
				continue
			}
			if err := n.peer.Push(ctx, n.blobs, url, it.hash); err != nil {
				n.variants.failed.Add(1)
				if !errors.Is(err, peer.ErrDown) {
					n.log.Warn("send a blob with its variants to an owner that lacks it", "blob", it.hash, "node", o.ID, "err", err)
				}
				continue
			}
			// A bare copy may have arrived meanwhile and kept its place:
			// it waits for the variants, so they go once more (a no-op
			// for the copy just sent, which has them).
			if it.tries == 0 {
				n.queueVariants(o, shipItem{hash: it.hash, tries: 1})
			} else {
				n.variants.sent.Add(1)
			}
		case peer.VariantsRefused:
			n.variants.failed.Add(1)
			n.log.Warn("a holder refused compressed variants (it compresses its own copy)", "blob", it.hash, "node", o.ID, "err", r.Error)
		default:
			// Not sent: the blob is gone here, or was never compressed.
		}
	}
}

// retryVariants queues the variants of a blob node o lacked for a later
// try, or gives up after the last of variantsRetry: o does not fetch it.
func (n *Node) retryVariants(o atoll.Node, it shipItem) {
	if it.tries >= len(variantsRetry) {
		return
	}
	it.due = time.Now().Add(variantsRetry[it.tries])
	it.tries++
	n.queueVariants(o, it)
}
