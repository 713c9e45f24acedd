package node

import (
	"context"
	"net/http"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/raft"
	"github.com/atoll-hosting/atoll/repair"
)

// Repair (package repair) keeps every referenced blob at R copies on its
// owners. Node wires it: the replicated state, the local blob store, the
// peer calls below (repairPeers), the cache's confirmations and the
// current placement; it runs the repair loop and serves POST /v1/repair.

// newRepairer makes the node's repairer; repairLoop runs it.
func (n *Node) newRepairer() (*repair.Repairer, error) {
	return repair.New(repair.Config{
		Self:      n.cfg.ID,
		Interval:  n.cfg.RepairInterval,
		GCGrace:   n.cfg.GCGrace,
		PullBatch: maxHasHashes,
		Logger:    n.log,
	}, n.store, gcLocal{n}, repairPeers{n}, repairCache{n}, n.placement)
}

// repairLoop runs repair passes until the node closes.
func (n *Node) repairLoop() {
	n.repair.Run(n.ctx)
}

// membershipChanged runs when the set of owners may have changed.
func (n *Node) membershipChanged() {
	n.forgetConfirmations()
	n.repair.MembershipChanged()
}

// repairPeers is repair.Peers: the peer calls of repair, each answered
// locally when the node is this one.
type repairPeers struct{ n *Node }

func (p repairPeers) Has(ctx context.Context, nd atoll.Node, hashes []string) (map[string]int64, error) {
	return p.n.has(ctx, nd, hashes)
}

func (p repairPeers) Push(ctx context.Context, nd atoll.Node, hash string) error {
	return p.n.peer.Push(ctx, p.n.blobs, p.n.peerURL(nd.APIAddr), hash)
}

// Pull has node nd fetch hashes from their holders; it returns how many
// arrived.
func (p repairPeers) Pull(ctx context.Context, nd atoll.Node, hashes []string) (int, error) {
	n := p.n
	if nd.ID == n.cfg.ID {
		got := 0
		for _, h := range hashes {
			if _, err := n.fetch(ctx, h); err == nil {
				got++
			}
		}
		return got, nil
	}
	out, err := n.peer.Pull(ctx, n.peerURL(nd.APIAddr), hashes)
	return out.Fetched, err
}

// repairCache is repair.Cache: the node's cache confirmations (cache.go).
type repairCache struct{ n *Node }

func (c repairCache) Confirm(hash string) { c.n.confirm(hash) }
func (c repairCache) EvictSoon()          { c.n.evictSoon() }

var (
	_ repair.Meta  = (*raft.Store)(nil)
	_ repair.Local = (*blobstore.Store)(nil)
	_ repair.Peers = repairPeers{}
	_ repair.Cache = repairCache{}
)

// handleRepair runs a local pass and a census now and answers the
// census's report.
func (n *Node) handleRepair(w http.ResponseWriter, r *http.Request) {
	if err := n.repair.LocalPass(r.Context()); err != nil {
		builder.WriteError(w, http.StatusInternalServerError, "repair: "+err.Error())
		return
	}
	rep, err := n.repair.Census(r.Context())
	if err != nil {
		builder.WriteError(w, http.StatusInternalServerError, "repair: "+err.Error())
		return
	}
	builder.WriteJSON(w, http.StatusOK, rep)
}
