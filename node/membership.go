package node

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/raft"
)

// onLeader runs h on the Raft leader: here if this node leads, else by
// proxying the request, unchanged, to the leader's API.
func (n *Node) onLeader(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n.awaitLeader(r.Context(), 5*time.Second) // ride out an election
		if n.store.IsLeader() {
			h(w, r)
			return
		}
		leader, ok := n.nodeByID(n.store.LeaderID())
		if !ok || leader.APIAddr == "" || r.Header.Get("X-Atoll-Forwarded") != "" {
			w.Header().Set("Retry-After", "1")
			builder.WriteError(w, http.StatusServiceUnavailable, "no raft leader known; retry shortly")
			return
		}
		target := &url.URL{Scheme: n.peerScheme(), Host: leader.APIAddr}
		proxy := httputil.NewSingleHostReverseProxy(target)
		proxy.Transport = n.peerTransport()
		proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("Retry-After", "1")
			builder.WriteError(w, http.StatusServiceUnavailable, fmt.Sprintf("leader %s unreachable: %v", leader.ID, err))
		}
		r.Header.Set("X-Atoll-Forwarded", n.cfg.ID)
		proxy.ServeHTTP(w, r)
	}
}

// awaitLeader waits up to d for a leader this node can reach through the
// node table.
func (n *Node) awaitLeader(ctx context.Context, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	n.awaitState(ctx, func() bool {
		_, ok := n.nodeByID(n.store.LeaderID())
		return ok
	})
}

// awaitState returns once ok() holds or ctx ends, re-checking whenever the
// known leader or the replicated state (the node table) changes.
func (n *Node) awaitState(ctx context.Context, ok func() bool) bool {
	for {
		leader, state := n.store.LeaderChanged(), n.store.Changed()
		if ok() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-leader:
		case <-state:
		}
	}
}

func (n *Node) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req atoll.JoinRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		builder.WriteError(w, http.StatusBadRequest, "malformed join request: "+err.Error())
		return
	}
	nd, err := joinNode(req)
	if err != nil {
		builder.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	assign := isTrue(r.URL.Query().Get("assign")) && nd.Role == atoll.RoleEdge && nd.Feeder == ""
	n.memberMu.Lock()
	err = n.admitBinary(r, nd) // feature.go
	if err == nil && assign {
		nd.Feeder, err = n.assignFeeder(r.Context(), nd) // assign.go
	}
	if err == nil {
		err = n.addNode(r.Context(), nd)
	}
	n.memberMu.Unlock()
	if err != nil {
		writeApplyError(w, err)
		return
	}
	if rec, ok := n.nodeByID(nd.ID); ok {
		nd = rec
	}
	res := atoll.JoinResponse{NodeStatus: atoll.NodeStatus{Node: nd, Suffrage: suffrageOf(nd)}}
	if feeder, ok := n.nodeByID(nd.Feeder); ok {
		res.FeederAPIAddr = feeder.APIAddr
	}
	builder.WriteJSON(w, http.StatusCreated, res)
}

func joinNode(req atoll.JoinRequest) (atoll.Node, error) {
	if req.Role == "" {
		req.Role = atoll.RoleCore
	}
	if !atoll.ValidSiteName(req.ID) {
		return atoll.Node{}, fmt.Errorf("node id %q: use 1-63 of [a-z0-9-]", req.ID)
	}
	if req.Role != atoll.RoleCore && req.Role != atoll.RoleEdge {
		return atoll.Node{}, fmt.Errorf("role %q: want core or edge", req.Role)
	}
	for name, addr := range map[string]string{"raft_addr": req.RaftAddr, "api_addr": req.APIAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return atoll.Node{}, fmt.Errorf("%s %q: want host:port", name, addr)
		}
	}
	if req.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(req.HTTPAddr); err != nil {
			return atoll.Node{}, fmt.Errorf("http_addr %q: want host:port", req.HTTPAddr)
		}
	}
	if req.FeedFrom != "" && (req.Role != atoll.RoleEdge || !atoll.ValidSiteName(req.FeedFrom) || req.FeedFrom == req.ID) {
		return atoll.Node{}, fmt.Errorf("feed_from %q: a fed edge follows another node, by id", req.FeedFrom)
	}
	return atoll.Node{ID: req.ID, Role: req.Role, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr,
		HTTPAddr: req.HTTPAddr, State: atoll.NodeActive, Joined: time.Now().UTC(), Feeder: req.FeedFrom}, nil
}

// suffrageOf is suffrage, or "fed" for a fed edge.
func suffrageOf(nd atoll.Node) string {
	if nd.Feeder != "" {
		return "fed"
	}
	return suffrage(nd.Role)
}

func suffrage(role string) string {
	if role == atoll.RoleCore {
		return "voter"
	}
	return "nonvoter"
}

// addNode makes nd a Raft member (voter for core, non-voter for edge) and
// records it in the node table. Joining again with the same addresses is a
// no-op, so a node may retry its join; a fed edge joining again may name
// another feeder (the one it follows now, recordFeeder).
func (n *Node) addNode(ctx context.Context, nd atoll.Node) error {
	if old, ok := n.nodeByID(nd.ID); ok {
		if old.RaftAddr == nd.RaftAddr && old.Role == nd.Role && (old.Feeder != "") == (nd.Feeder != "") && old.State != atoll.NodeRemoved {
			nd.Joined, nd.State = old.Joined, old.State
			if !n.canFeed(nd.Feeder) {
				nd.Feeder = old.Feeder
			}
			if old == nd {
				return nil
			}
			return n.apply(ctx, raft.PutNode{Node: nd})
		}
		if old.Role != nd.Role {
			return fmt.Errorf("%w: node %s is already a %s node; remove it first", atoll.ErrConflict, nd.ID, old.Role)
		}
	}
	if nd.Feeder != "" {
		return n.addFed(ctx, nd) // feed.go
	}
	var err error
	if nd.Role == atoll.RoleCore {
		err = n.store.AddVoter(ctx, nd.ID, nd.RaftAddr)
	} else {
		err = n.store.AddNonvoter(ctx, nd.ID, nd.RaftAddr)
	}
	if err != nil {
		return fmt.Errorf("add %s to raft: %w", nd.ID, err)
	}
	n.log.Info("node joined", "id", nd.ID, "role", nd.Role, "raft", nd.RaftAddr)
	return n.apply(ctx, raft.PutNode{Node: nd})
}

func (n *Node) handleDrain(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	nd, ok := n.nodeByID(id)
	if !ok {
		builder.WriteError(w, http.StatusNotFound, fmt.Sprintf("no node %q in the cluster", id))
		return
	}
	if nd.State != atoll.NodeDraining {
		nd.State = atoll.NodeDraining
		if err := n.apply(r.Context(), raft.PutNode{Node: nd}); err != nil {
			writeApplyError(w, err)
			return
		}
		n.log.Info("node draining", "id", id)
	}
	builder.WriteJSON(w, http.StatusAccepted, n.drainStatus(r.Context(), nd))
}

func (n *Node) handleDrainStatus(w http.ResponseWriter, r *http.Request) {
	nd, ok := n.nodeByID(r.PathValue("id"))
	if !ok {
		builder.WriteError(w, http.StatusNotFound, fmt.Sprintf("no node %q in the cluster", r.PathValue("id")))
		return
	}
	builder.WriteJSON(w, http.StatusOK, n.drainStatus(r.Context(), nd))
}

// drainStatus asks the node how many of its referenced blobs still wait
// for their new owners.
func (n *Node) drainStatus(ctx context.Context, nd atoll.Node) atoll.DrainStatus {
	st := atoll.DrainStatus{ID: nd.ID, State: nd.State, Left: -1}
	if nd.State != atoll.NodeDraining {
		return st
	}
	stats, err := n.statsOf(ctx, nd)
	if err == nil {
		st.Left = stats.DrainLeft
		st.Done = stats.DrainLeft == 0
	}
	return st
}

func (n *Node) statsOf(ctx context.Context, nd atoll.Node) (peer.Stats, error) {
	return n.statsVia(ctx, n.peer, nd)
}

// statsVia is statsOf through client c.
func (n *Node) statsVia(ctx context.Context, c *peer.Client, nd atoll.Node) (peer.Stats, error) {
	if nd.ID == n.cfg.ID {
		return n.localStats(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return c.Stats(ctx, n.peerURL(nd.APIAddr))
}

// handleRemove takes a node out of Raft and the node table. Unless
// ?force=true it refuses while a referenced blob has no copy on any other
// core node. Removing the leader hands leadership over first.
func (n *Node) handleRemove(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	nd, ok := n.nodeByID(id)
	if !ok {
		builder.WriteError(w, http.StatusNotFound, fmt.Sprintf("no node %q in the cluster", id))
		return
	}
	if !isTrue(r.URL.Query().Get("force")) {
		only, err := n.repair.LastCopies(r.Context(), id)
		if err != nil {
			builder.WriteError(w, http.StatusServiceUnavailable, "check copies: "+err.Error())
			return
		}
		if only > 0 {
			builder.WriteError(w, http.StatusConflict, fmt.Sprintf(
				"node %s may hold the last copy of %d referenced blobs (no other core node has them); drain it first, or remove with --force to accept the loss", id, only))
			return
		}
	}
	if id == n.cfg.ID {
		if err := n.handOver(r.Context()); err != nil {
			builder.WriteError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		r.Header.Del("X-Atoll-Forwarded")
		n.onLeader(n.handleRemove)(w, r)
		return
	}
	if err := n.removeFromRaft(r.Context(), id); err != nil {
		if resent, _ := strconv.Atoi(r.Header.Get(headerRemoveRetry)); errors.Is(err, raft.ErrNotLeader) && resent < maxRemoveResends {
			// Leadership moved while the change was in flight (its outcome
			// is unknown): the request goes to the new leader, where
			// removeFromRaft completes it or finds it done.
			r.Header.Set(headerRemoveRetry, strconv.Itoa(resent+1))
			r.Header.Del("X-Atoll-Forwarded")
			n.onLeader(n.handleRemove)(w, r)
			return
		}
		writeApplyError(w, fmt.Errorf("remove %s from raft: %w", id, err))
		return
	}
	if err := n.apply(r.Context(), raft.RemoveNode{ID: id}); err != nil && !errors.Is(err, atoll.ErrNotFound) {
		writeApplyError(w, err)
		return
	}
	n.log.Info("node removed", "id", id)
	nd.State = atoll.NodeRemoved
	builder.WriteJSON(w, http.StatusOK, atoll.NodeStatus{Node: nd, Suffrage: suffrageOf(nd)})
}

// headerRemoveRetry counts the times a node removal was sent again to a
// new leader after the leader lost its leadership during the Raft change;
// it is resent at most maxRemoveResends times.
const (
	headerRemoveRetry = "X-Atoll-Remove-Retry"
	maxRemoveResends  = 3
)

// removeFromRaft takes id out of the Raft configuration (leader only). It
// is idempotent: a server the leader's configuration no longer lists (a
// removal whose answer was lost with a change of leader) is not removed
// again.
func (n *Node) removeFromRaft(ctx context.Context, id string) error {
	servers, err := n.store.Servers()
	if err == nil && !slices.ContainsFunc(servers, func(s raft.Server) bool { return s.ID == id }) {
		return nil
	}
	return n.store.RemoveServer(ctx, id)
}

func isTrue(s string) bool {
	return s == "1" || strings.EqualFold(s, "true") || strings.EqualFold(s, "yes")
}

// handOver transfers leadership away from this node and waits until
// another node leads. A transfer that fails while this node still leads
// (a transfer already in progress, a follower that did not catch up in
// time) is tried again, for up to 15 s.
func (n *Node) handOver(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	stillLeads := func(error) bool { return n.store.IsLeader() }
	err := applyBackoff.Retry(ctx, stillLeads, func(context.Context) error {
		if !n.store.IsLeader() {
			return nil // handed over already
		}
		return n.store.LeadershipTransfer()
	})
	if err != nil && n.store.IsLeader() {
		return fmt.Errorf("hand leadership over: %w", err)
	}
	if !n.awaitState(ctx, func() bool {
		id := n.store.LeaderID()
		return id != "" && id != n.cfg.ID
	}) {
		return errors.New("no new leader after handing leadership over")
	}
	return nil
}

// has asks one node (possibly this one) which of hashes it holds.
func (n *Node) has(ctx context.Context, nd atoll.Node, hashes []string) (map[string]int64, error) {
	if nd.ID == n.cfg.ID {
		return n.blobs.Present(hashes), nil
	}
	return n.peer.Has(ctx, n.peerURL(nd.APIAddr), hashes)
}

// writeApplyError maps a write's error to an API answer.
func writeApplyError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, atoll.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, atoll.ErrExists), errors.Is(err, atoll.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, atoll.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, ErrNoLeader):
		w.Header().Set("Retry-After", "1")
		status = http.StatusServiceUnavailable
	}
	builder.WriteError(w, status, err.Error())
}

// joinBackoff paces a node's attempts to join while the cluster is
// unreachable or electing.
var joinBackoff = peer.Backoff{First: 250 * time.Millisecond, Max: 2 * time.Second}

// join asks the cluster at cfg.Join to add this node, retrying while the
// cluster is unreachable or electing, for up to a minute. A certificate
// refused either way is not retried: it is a setup error.
func (n *Node) join(ctx context.Context) error {
	req := n.joinRequest()
	if n.store.Fed() {
		req.FeedFrom = n.feederID()
	}
	err := n.retryJoin(ctx, n.joinVia(), func(ctx context.Context) error {
		return n.peer.Join(ctx, n.joinVia(), req)
	})
	if err != nil {
		return err
	}
	n.log.Info("joined cluster", "via", n.joinVia(), "feeder", req.FeedFrom)
	return nil
}

// joinRequest is this node's join request.
func (n *Node) joinRequest() atoll.JoinRequest {
	self := n.self()
	return atoll.JoinRequest{ID: self.ID, Role: self.Role, RaftAddr: self.RaftAddr, APIAddr: self.APIAddr, HTTPAddr: self.HTTPAddr}
}

// joinVia is the API URL this node joins through.
func (n *Node) joinVia() string { return cmp.Or(n.cfg.Join, n.cfg.FeedFrom) }

// retryJoin runs call, one attempt to join through via, again while the
// cluster is unreachable or electing, for up to a minute.
func (n *Node) retryJoin(ctx context.Context, via string, call func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	retryable := func(err error) bool {
		var e *peer.Error
		if errors.As(err, &e) {
			return e.StatusCode == http.StatusServiceUnavailable
		}
		return errors.Is(err, peer.ErrUnreachable) && !isTLSRefusal(err)
	}
	if err := joinBackoff.Retry(ctx, retryable, call); err != nil {
		return fmt.Errorf("join %s: %w", via, err)
	}
	return nil
}

// unreachable is the RaftState fanOutStats gives a node that did not answer.
const unreachable = "unreachable"

// fanOutStats asks every node for its stats, concurrently.
func (n *Node) fanOutStats(ctx context.Context, nodes []atoll.Node) map[string]peer.Stats {
	return n.fanOutVia(ctx, n.peer, nodes)
}

// fanOutVia is fanOutStats through client c.
func (n *Node) fanOutVia(ctx context.Context, c *peer.Client, nodes []atoll.Node) map[string]peer.Stats {
	var mu sync.Mutex
	out := make(map[string]peer.Stats, len(nodes))
	var wg sync.WaitGroup
	for _, nd := range nodes {
		wg.Go(func() {
			st, err := n.statsVia(ctx, c, nd)
			if err != nil {
				st = peer.Stats{ID: nd.ID, RaftState: unreachable}
			}
			mu.Lock()
			out[nd.ID] = st
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// ErrRemoved is why a node removed from the cluster serves no site and is
// not ready.
var ErrRemoved = errors.New("this node was removed from the cluster: it serves no site; wipe its data dir and join it again to bring it back")

// membershipSeen is what watchRemoval has seen of this node's membership.
type membershipSeen struct {
	inConfig, inTable bool // this node was in the Raft configuration, in the node table
}

// removedFrom decides whether this node has been removed from the cluster:
// it was in the Raft configuration and is no longer, or in the node table
// and is no longer; or the node table marks it removed; or the node table
// lists it and the configuration does not (a member joins the
// configuration before the table, and leaves it first, so this holds only
// between the two steps of a removal, including after a restart of a node
// that heard of only the first). A node that never was a member (joining)
// is not removed. It updates seen.
//
// settled is false when the configuration may be older than the table
// (configSettled): then it decides from the table alone, and neither
// counts nor remembers the configuration.
func removedFrom(seen *membershipSeen, id string, servers []raft.Server, settled bool, table []atoll.Node) bool {
	idx := slices.IndexFunc(table, func(nd atoll.Node) bool { return nd.ID == id })
	inTable := idx >= 0 && table[idx].State != atoll.NodeRemoved
	removed := (seen.inTable && !inTable) || (idx >= 0 && !inTable)
	seen.inTable = seen.inTable || inTable
	if !settled {
		return removed
	}
	inConfig := slices.ContainsFunc(servers, func(s raft.Server) bool { return s.ID == id })
	removed = removed || (seen.inConfig && !inConfig) || (idx >= 0 && len(servers) > 0 && !inConfig)
	seen.inConfig = seen.inConfig || inConfig
	if inConfig && inTable {
		// Back in both (added again): a member like any other.
		seen.inConfig, seen.inTable, removed = true, true, false
	}
	return removed
}

// configSettled reports whether the Raft configuration is at least as
// recent as the node table this node reads. Right after it installed a
// snapshot from the leader it may not be: hashicorp/raft restores the FSM
// (whose table may list this node, having joined since the node's last
// snapshot) before it sets the snapshot's configuration, and until then
// Servers answers the configuration from before, which may lack this node.
// Judging from that pair once declared a freshly joined edge removed, and
// nothing woke the decision again in an idle cluster. From the first entry
// applied after the restore on, both are current (raft.FSM.RestoredAt). It
// returns the restore's index too: a caller that reads both afterwards
// checks that no other restore came in between.
func (n *Node) configSettled() (restoredAt uint64, settled bool) {
	at := n.store.RestoredAt()
	return at, at == 0 || n.store.AppliedIndex() > at
}

// watchRemoval keeps n.removed current: it re-decides after every change of
// the replicated state and of the known leader, and when a peer proved
// this node removed (orphan.go). A removed node hears of its removal
// through the Raft configuration the leader sends it last, and its leader
// becomes unknown once the heartbeats stop: either wakes it. A node cut
// off during its removal hears of it from its peers instead.
func (n *Node) watchRemoval() {
	var seen membershipSeen
	for {
		leader, state := n.store.LeaderChanged(), n.store.Changed()
		restoredAt, settled := n.configSettled()
		servers, err := n.store.Servers()
		nodes, terr := n.store.Nodes()
		settled = settled && n.store.RestoredAt() == restoredAt // no restore in between
		if err == nil && terr == nil {
			told, by := n.told.holds(n.store.AppliedIndex())
			removed := removedFrom(&seen, n.cfg.ID, servers, settled, nodes) || told
			if n.removed.Swap(removed) != removed {
				wake := make(chan struct{})
				if old := n.removedWake.Swap(&wake); old != nil {
					close(*old)
				}
				if removed {
					attrs := []any{"id", n.cfg.ID}
					if told {
						attrs = append(attrs, "told_by", by)
					}
					n.log.Error("this node was removed from the cluster: it no longer serves sites and reports not ready", attrs...)
				} else {
					n.log.Info("this node is a cluster member again", "id", n.cfg.ID)
				}
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-leader:
		case <-state:
		case <-n.told.wake:
		}
	}
}

// Removed reports whether this node knows it was removed from the cluster.
func (n *Node) Removed() bool { return n.removed.Load() }

// removedChanged returns a channel closed when Removed next changes.
func (n *Node) removedChanged() <-chan struct{} {
	for {
		if p := n.removedWake.Load(); p != nil {
			return *p
		}
		wake := make(chan struct{})
		n.removedWake.CompareAndSwap(nil, &wake)
	}
}
