package node

import (
	"context"
	"errors"
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

// variantsPushSlots bounds the variant transfers in flight from this node.
const variantsPushSlots = 4

// variantsShipping is the state of the variants this node sends.
type variantsShipping struct {
	slots        chan struct{}
	sent, failed atomic.Int64
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
	for _, o := range n.variantsTargets(p, hash) {
		n.wg.Go(func() {
			select {
			case n.variants.slots <- struct{}{}:
			case <-n.ctx.Done():
				return
			}
			defer func() { <-n.variants.slots }()
			ctx, cancel := context.WithTimeout(n.ctx, 2*time.Minute)
			defer cancel()
			edge := o.Role == atoll.RoleEdge
			err := n.pushVariants(ctx, o, hash, !edge)
			switch {
			case err == nil:
				n.variants.sent.Add(1)
			case edge && errors.Is(err, blobstore.ErrNotFound):
				// Not cached there: nothing to do.
			default:
				n.variants.failed.Add(1)
				if !errors.Is(err, peer.ErrDown) {
					n.log.Warn("send compressed variants to a holder (it compresses its own copy)", "blob", hash, "node", o.ID, "err", err)
				}
			}
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
