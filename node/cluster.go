package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"

	"golang.org/x/sync/errgroup"

	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/placement"
	"github.com/atoll-hosting/atoll/raft"
)

// ErrNoLeader is returned when a write cannot reach a Raft leader in time.
var ErrNoLeader = errors.New("no raft leader reachable")

// watchState keeps the node's derived views (placement) current: it
// recomputes them after every change of the replicated state.
func (n *Node) watchState() {
	var lastNodes string
	for {
		changed := n.store.Changed()
		n.refreshPlacement()
		if n.cfg.Role == atoll.RoleEdge {
			n.prefetchPublished()
		}
		if key := n.placementKey(); key != lastNodes {
			if lastNodes != "" {
				n.membershipChanged()
			}
			lastNodes = key
		}
		select {
		case <-changed:
		case <-n.ctx.Done():
			return
		}
	}
}

// placementKey identifies the membership that placement depends on.
func (n *Node) placementKey() string {
	p := n.place.Load()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d", p.Replicas())
	for _, c := range p.Cores() {
		b.WriteString("," + c.ID)
	}
	return b.String()
}

func (n *Node) refreshPlacement() {
	nodes, err := n.store.Nodes()
	if err != nil {
		n.log.Error("read node table", "err", err)
		return
	}
	r := n.store.Replicas()
	if r == 0 {
		r = n.cfg.Replicas
	}
	n.place.Store(placement.New(nodes, r))
}

// newPeerHealth returns the view of which peers answer that every call of
// n.peer consults (peer.Health): a peer that does not answer one call is
// skipped until a probe of its /healthz answers.
func (n *Node) newPeerHealth() *peer.Health {
	cfg := peer.DefaultHealthConfig()
	cfg.Probe = n.peer.Ping
	cfg.OnChange = func(host string, up bool, why error) {
		if up {
			n.log.Info("peer answers again", "peer", host)
		} else {
			n.log.Warn("peer marked down: its calls are skipped until it answers a probe", "peer", host, "err", why)
		}
	}
	h, err := peer.NewHealth(cfg)
	if err != nil {
		panic(err) // the configuration above is valid
	}
	return h
}

// placement returns the current placement view.
func (n *Node) placement() *placement.View { return n.place.Load() }

// nodeByID returns the node table entry of id.
func (n *Node) nodeByID(id string) (atoll.Node, bool) {
	for _, nd := range n.placement().All() {
		if nd.ID == id {
			return nd, true
		}
	}
	return atoll.Node{}, false
}

// applyBackoff paces the retries of a write while there is no leader.
var applyBackoff = peer.Backoff{First: 50 * time.Millisecond, Max: 500 * time.Millisecond}

// apply replicates cmd through the leader: directly when this node leads,
// else forwarded to the leader's peer endpoint. While there is no leader
// (an election) it retries until ctx ends or 15 s pass; commands are
// idempotent, so a retry after an unknown outcome is safe. After a
// forwarded write it waits until this node has applied it, so that the
// caller reads its own write.
func (n *Node) apply(ctx context.Context, cmd raft.Command) error {
	defer func(start time.Time) { n.metrics.apply.Observe(time.Since(start).Seconds()) }(time.Now())
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	noLeader := func(err error) bool { return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, ErrNoLeader) }
	var index uint64
	err := applyBackoff.Retry(ctx, noLeader, func(ctx context.Context) (err error) {
		index, err = n.applyOnce(ctx, cmd)
		return err
	})
	switch {
	case err != nil && noLeader(err):
		return fmt.Errorf("%w: %v", raft.ErrNotLeader, err)
	case err != nil:
		return err
	case index > 0:
		if err := n.store.WaitApplied(ctx, index); err != nil {
			return fmt.Errorf("wait for own write: %w", err)
		}
	}
	return nil
}

// applyOnce makes one attempt; it returns the index to wait for when the
// command went through another node.
func (n *Node) applyOnce(ctx context.Context, cmd raft.Command) (uint64, error) {
	if n.store.IsLeader() {
		_, err := n.store.ApplyIndex(ctx, cmd)
		return 0, err
	}
	leader, ok := n.nodeByID(n.store.LeaderID())
	if !ok || leader.APIAddr == "" {
		return 0, fmt.Errorf("%w: leader %q not in the node table", ErrNoLeader, n.store.LeaderID())
	}
	index, err := n.peer.Apply(ctx, n.peerURL(leader.APIAddr), cmd)
	if errors.Is(err, peer.ErrUnreachable) {
		return 0, fmt.Errorf("%w: forward to %s: %v", ErrNoLeader, leader.ID, err)
	}
	return index, err
}

// handlePeerApply applies a command forwarded by another node. It must
// lead; the forwarding node retries elsewhere on not_leader.
func (n *Node) handlePeerApply(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(io.LimitReader(r.Body, raft.MaxCommandBytes+1))
	if err != nil {
		builder.WriteError(w, http.StatusBadRequest, "read command: "+err.Error())
		return
	}
	cmd, err := raft.Decode(data)
	if err != nil {
		peer.WriteError(w, http.StatusBadRequest, err)
		return
	}
	index, err := n.store.ApplyIndex(r.Context(), cmd)
	if err != nil {
		status := http.StatusConflict
		if errors.Is(err, raft.ErrNotLeader) {
			status = http.StatusServiceUnavailable
		} else if peer.KindOf(err) == "" {
			status = http.StatusInternalServerError
		}
		peer.WriteError(w, status, err)
		return
	}
	builder.WriteJSON(w, http.StatusOK, peer.ApplyResponse{Index: index})
}

// prefetchPublished starts a background prefetch of every newly published
// deploy, so that an edge serves a fresh publish from its own disk. It
// reads the publishes applied since its last call from the FSM's feed, and
// every site's live deploy only when the feed cannot say (the first call,
// after a restore, or after more publishes than the feed keeps): reading
// 100,000 site records after every applied batch was most of an edge's
// CPU at platform scale (bench/RESULTS.md).
func (n *Node) prefetchPublished() {
	ids, next, ok := n.store.PublishedSince(n.publishCursor)
	if !ok {
		sites, err := n.store.Sites()
		if err != nil {
			return
		}
		ids = ids[:0]
		for _, s := range sites {
			if s.Published != "" {
				ids = append(ids, s.Published)
			}
		}
	}
	n.publishCursor = next
	var fresh []string
	for _, id := range ids {
		if !n.prefetched[id] {
			n.prefetched[id] = true
			fresh = append(fresh, id)
		}
	}
	n.prefetches.push(n.ctx, fresh, &n.wg, n.prefetch)
}

// prefetchWorkers bounds the deploys an edge prefetches at once (each
// fetches up to 8 blobs at once): a new edge of a cluster of 100,000 sites
// finds 100,000 published deploys at its first look.
const prefetchWorkers = 4

// prefetchQueue holds the deploys waiting for a prefetch, newest last,
// and runs at most prefetchWorkers of them at once, newest first: a
// fresh publish does not wait behind a new edge's backlog.
type prefetchQueue struct {
	mu      sync.Mutex
	ids     []string
	running int
}

// push queues ids and starts workers (counted in wg) running run on them
// until the queue is empty or ctx ends.
func (q *prefetchQueue) push(ctx context.Context, ids []string, wg *sync.WaitGroup, run func(id string)) {
	if len(ids) == 0 {
		return
	}
	q.mu.Lock()
	q.ids = append(q.ids, ids...)
	start := min(prefetchWorkers-q.running, len(q.ids))
	q.running += start
	q.mu.Unlock()
	for range start {
		wg.Go(func() {
			for {
				q.mu.Lock()
				if len(q.ids) == 0 || ctx.Err() != nil {
					q.running--
					q.mu.Unlock()
					return
				}
				id := q.ids[len(q.ids)-1]
				q.ids = q.ids[:len(q.ids)-1]
				q.mu.Unlock()
				run(id)
			}
		})
	}
}

// prefetch fetches the blobs of deploy id this node lacks, a few at a
// time, stopping when the cache would overflow.
func (n *Node) prefetch(id string) {
	var missing []string
	var bytes int64
	err := n.store.Files(id, func(f atoll.File) error {
		if !n.blobs.Has(f.Hash) {
			missing = append(missing, f.Hash)
		}
		return n.ctx.Err()
	})
	if err != nil || len(missing) == 0 {
		return
	}
	start := time.Now()
	var g errgroup.Group
	g.SetLimit(8)
	var mu sync.Mutex
	for _, h := range missing {
		g.Go(func() error {
			info, err := n.fetch(n.ctx, h)
			if err != nil {
				return nil // served by read-through later, or reported by repair
			}
			mu.Lock()
			defer mu.Unlock()
			bytes += info.Size
			if bytes > n.cfg.CacheSize {
				return errCacheFull
			}
			return nil
		})
	}
	if err := g.Wait(); errors.Is(err, errCacheFull) {
		n.log.Warn("prefetch stopped: deploy larger than the cache", "deploy", id, "cache_size", n.cfg.CacheSize)
	}
	n.log.Debug("prefetched deploy", "deploy", id, "blobs", len(missing), "took", time.Since(start))
}

var errCacheFull = errors.New("cache full")
