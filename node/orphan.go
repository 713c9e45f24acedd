package node

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/peer"
)

// Asking whether this node was removed. A node cut off while the operator
// removed it (frozen, partitioned) never receives the entries that say so:
// the leader stops sending it anything. So a node that has heard from no
// leader for removalAskAfter asks the other nodes of its node table,
// every removalAskEvery while that lasts, whether they still count it as
// a member (peer.Client.Member, authenticated by the cluster key like
// every peer call). An answer "not a member" from a node that applied at
// least as much of the log as this one is proof of the removal (see
// peer.MemberResponse): this node then behaves as one that saw its
// removal in its own state (watchRemoval). Any other answer, or none,
// changes nothing: a stale or unreachable peer cannot remove a node.
const (
	removalAskAfter = 5 * time.Second
	removalAskEvery = 2 * time.Second
	removalAskLimit = 3 * time.Second // one round of questions
)

// toldRemoved records that a peer proved this node removed at log index
// at; watchRemoval counts the node removed while its own applied index
// has not passed at (past it, a leader is talking to it again and its
// own state decides).
type toldRemoved struct {
	mu   sync.Mutex
	at   uint64 // 0: not told
	by   string
	wake chan struct{} // cap 1: watchRemoval re-decides
}

func (t *toldRemoved) set(at uint64, by string) {
	t.mu.Lock()
	t.at, t.by = at, by
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// holds reports whether a peer's proof of removal still stands at this
// node's applied index, and who gave it.
func (t *toldRemoved) holds(applied uint64) (bool, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.at > 0 && applied <= t.at, t.by
}

// askRemovalLoop asks the other nodes whether this node is still a member
// while it hears from no leader (see above).
func (n *Node) askRemovalLoop() {
	t := time.NewTicker(removalAskEvery)
	defer t.Stop()
	var leaderless time.Time // since when no leader was heard; zero: one is
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if n.Removed() || n.hearsLeader() {
			leaderless = time.Time{}
			continue
		}
		if leaderless.IsZero() {
			leaderless = time.Now()
		}
		if time.Since(leaderless) >= removalAskAfter {
			n.askRemoval()
		}
	}
}

// hearsLeader reports whether this node leads or heard from its leader
// within removalAskAfter.
func (n *Node) hearsLeader() bool {
	if n.store.IsLeader() {
		return true
	}
	return n.store.LeaderID() != "" && time.Since(n.store.LastContact()) < removalAskAfter
}

// askRemoval asks every other node of the node table, concurrently,
// whether this node is a member, and records a proof of its removal. A
// node whose own table does not list it (still joining) asks nothing: the
// proof needs this node's own state to have listed it at its index.
func (n *Node) askRemoval() {
	nodes, err := n.store.Nodes()
	if err != nil {
		return
	}
	mine := n.store.AppliedIndex()
	if !slices.ContainsFunc(nodes, func(nd atoll.Node) bool { return nd.ID == n.cfg.ID && nd.State != atoll.NodeRemoved }) {
		return // not a member by its own state (joining, or removed already): nothing to prove
	}
	ctx, cancel := context.WithTimeout(n.ctx, removalAskLimit)
	defer cancel()
	var wg sync.WaitGroup
	for _, nd := range nodes {
		if nd.ID == n.cfg.ID || nd.APIAddr == "" {
			continue
		}
		wg.Go(func() {
			ans, err := n.peer.Member(ctx, n.peerURL(nd.APIAddr), n.cfg.ID)
			if err != nil || ans.ID != n.cfg.ID || ans.Member || ans.AppliedIndex < mine {
				return
			}
			n.log.Warn("a peer reports this node removed from the cluster", "id", n.cfg.ID, "by", nd.ID, "its_applied_index", ans.AppliedIndex, "applied_index", mine)
			n.told.set(ans.AppliedIndex, nd.ID)
		})
	}
	wg.Wait()
}

// handlePeerMember answers whether this node's replicated state lists the
// node named in the path as a member (peer.MemberResponse). The index is
// read before the table, so the table is at least that recent.
func (n *Node) handlePeerMember(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	applied := n.store.AppliedIndex()
	nodes, err := n.store.Nodes()
	if err != nil {
		builder.WriteError(w, http.StatusServiceUnavailable, "read the node table: "+err.Error())
		return
	}
	member := false
	for _, nd := range nodes {
		if nd.ID == id && nd.State != atoll.NodeRemoved {
			member = true
		}
	}
	builder.WriteJSON(w, http.StatusOK, peer.MemberResponse{ID: id, Member: member, AppliedIndex: applied})
}
