package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/raft"
)

// A fed edge (docs/FANOUT.md) is an edge outside the Raft configuration
// that follows the committed log of a feeder, a Raft member, through
// GET /v1/peer/log: feedLoop streams the frames into raft.Store.ApplyFeed,
// which refuses any frame that does not continue the state exactly. Its
// writes go to the leader like a follower's (apply: its Store answers
// ErrNotLeader and names the leader its feeder reported).

// feedState is what a fed edge knows of its feeders.
type feedState struct {
	// feeder is the id of the node it follows now ("" until the first
	// frame).
	feeder atomic.Pointer[string]
	// first is the API URL of the feeder the leader assigned this new
	// edge (assign.go), set before the feed starts; "" otherwise.
	first string
}

// fedMode decides, before the stores open, whether this node is a fed
// edge: its data dir holds a fed edge's state, or it is new, was started
// with --feed-from and the cluster (as the feeder reports it) has reached
// atoll.LevelFedEdges. Below that level --feed-from is refused with an
// error in the log, and the edge joins as a Raft non-voter.
func (n *Node) fedMode(ctx context.Context) (bool, error) {
	dir := filepath.Join(n.cfg.DataDir, "raft")
	if raft.IsFollowerDir(dir) {
		return true, nil
	}
	if raftStateIn(dir) {
		if n.cfg.FeedFrom != "" {
			n.log.Warn("--feed-from ignored: this node's data dir holds Raft state, so it stays a Raft member")
		}
		return false, nil
	}
	if n.cfg.FeedFrom == "" {
		if n.cfg.Join == "" || n.cfg.Role != atoll.RoleEdge {
			return false, nil
		}
		return n.joinAssigned(ctx) // assign.go: the leader decides
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var st peer.Stats
	err := joinBackoff.Retry(ctx, func(err error) bool { return errors.Is(err, peer.ErrUnreachable) }, func(ctx context.Context) (err error) {
		st, err = n.peer.Stats(ctx, n.cfg.FeedFrom)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("--feed-from %s: %w", n.cfg.FeedFrom, err)
	}
	if st.ClusterLevel < atoll.LevelFedEdges {
		n.log.Error("--feed-from refused: the cluster is below the feature level of fed edges (every node must run a binary that knows it); joining as a Raft non-voter instead",
			"cluster_level", st.ClusterLevel, "needs", atoll.LevelFedEdges, "feeder", st.ID)
		return false, nil
	}
	if st.RaftState == raft.StateFed {
		return false, fmt.Errorf("%w: --feed-from %s: node %s is itself a fed edge; follow a core node or a Raft non-voter edge", ErrConfig, n.cfg.FeedFrom, st.ID)
	}
	n.feed.feeder.Store(&st.ID)
	return true, nil
}

// raftStateIn reports whether dir holds a Raft member's log.
func raftStateIn(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "raft.db"))
	return err == nil
}

// addFed records the fed edge nd in the node table, on the leader,
// without a change of the Raft configuration: only at
// atoll.LevelFedEdges, and only following a Raft member of the table.
func (n *Node) addFed(ctx context.Context, nd atoll.Node) error {
	if err := n.RequireFeature(ctx, "a fed edge (--feed-from)", atoll.LevelFedEdges); err != nil {
		return err
	}
	if !n.canFeed(nd.Feeder) {
		return fmt.Errorf("%w: feeder %q is not a Raft member of the cluster: a fed edge follows a core node or a Raft non-voter edge", atoll.ErrInvalid, nd.Feeder)
	}
	if old, ok := n.nodeByID(nd.ID); ok && old.Feeder == "" && old.State != atoll.NodeRemoved {
		return fmt.Errorf("%w: node %s is a Raft member; remove it before it joins again as a fed edge", atoll.ErrConflict, nd.ID)
	}
	n.log.Info("fed edge joined", "id", nd.ID, "feeder", nd.Feeder)
	return n.apply(ctx, raft.PutNode{Node: nd})
}

// feedUnlessRemoved serves feeder (the log stream) while this node is a
// member of the cluster: a removed node hears no more of the log, so
// its streams end when it learns of its removal and new ones are refused
// (404), and the fed edges that followed it move to another feeder.
func (n *Node) feedUnlessRemoved(feeder http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		changed := n.removedChanged()
		if n.Removed() {
			peer.WriteError(w, http.StatusNotFound, ErrRemoved)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		go func() {
			select {
			case <-changed:
				cancel()
			case <-ctx.Done():
			}
		}()
		feeder.ServeHTTP(w, r.WithContext(ctx))
	})
}

// recordFeeder writes feeder, the node this fed edge follows now, into
// its node record when the record names another (its first feeder died
// or was removed), so that `atoll node list` and the leader's assignment
// (assign.go) see who feeds whom. It joins again through the leader,
// which changes the feeder of the record it holds and nothing else
// (addNode), and leaves alone a record the table no longer holds.
func (n *Node) recordFeeder(feeder string) {
	self, ok := n.nodeByID(n.cfg.ID)
	if !ok || self.Feeder == "" || self.Feeder == feeder || self.State == atoll.NodeRemoved {
		return
	}
	req := n.joinRequest()
	req.FeedFrom = feeder
	n.background(func() {
		err := n.retryJoin(n.ctx, "the leader", func(ctx context.Context) error {
			leader, ok := n.nodeByID(n.store.LeaderID())
			if !ok || leader.APIAddr == "" {
				return fmt.Errorf("%w: leader %q not in the node table", peer.ErrUnreachable, n.store.LeaderID())
			}
			return n.peer.Join(ctx, n.peerURL(leader.APIAddr), req)
		})
		if err != nil && n.ctx.Err() == nil {
			n.log.Warn("fed edge: record the feeder it follows", "feeder", feeder, "err", err)
		}
	})
}

// canFeed reports whether the node table holds id as a Raft member, a
// node a fed edge may follow.
func (n *Node) canFeed(id string) bool {
	nd, ok := n.nodeByID(id)
	return ok && nd.State != atoll.NodeRemoved && nd.Feeder == ""
}

// feederID returns the id of the node this fed edge follows now.
func (n *Node) feederID() string {
	if p := n.feed.feeder.Load(); p != nil {
		return *p
	}
	if self, ok := n.nodeByID(n.cfg.ID); ok {
		return self.Feeder
	}
	return ""
}

// feeders returns the API URLs this fed edge tries, in order: its
// --feed-from or the feeder the leader assigned it at its join, the
// feeder it follows or its record names, then every other Raft member
// of the node table, edges before cores, each group in rendezvous order
// of this node's id (so the edges of a dead relay spread out), and its
// --join node.
func (n *Node) feeders() []string {
	var out []string
	for _, u := range []string{n.cfg.FeedFrom, n.feed.first} {
		if u != "" {
			out = append(out, strings.TrimRight(u, "/"))
		}
	}
	var edges, cores []atoll.Node
	first := n.feederID()
	for _, nd := range n.placement().All() {
		switch {
		case nd.ID == n.cfg.ID || nd.Feeder != "" || nd.State == atoll.NodeRemoved || nd.APIAddr == "":
		case nd.ID == first:
			out = append(out, n.peerURL(nd.APIAddr))
		case nd.Role == atoll.RoleCore:
			cores = append(cores, nd)
		default:
			edges = append(edges, nd)
		}
	}
	for _, group := range [][]atoll.Node{edges, cores} {
		slices.SortFunc(group, func(a, b atoll.Node) int {
			return cmp.Compare(rendezvous(n.cfg.ID, b.ID), rendezvous(n.cfg.ID, a.ID))
		})
		for _, nd := range group {
			out = append(out, n.peerURL(nd.APIAddr))
		}
	}
	if join := strings.TrimRight(n.cfg.Join, "/"); join != "" && !slices.Contains(out, join) {
		// Last: before its first frame a new edge knows no node table,
		// and the feeder it was given may have died since.
		out = append(out, join)
	}
	return slices.Compact(out)
}

// rendezvous is the weight of feeder for edge.
func rendezvous(edge, feeder string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(edge))
	h.Write([]byte{0})
	h.Write([]byte(feeder))
	return h.Sum32()
}

// feedBackoff paces a fed edge's attempts once every feeder failed.
var feedBackoff = peer.Backoff{First: 250 * time.Millisecond, Max: 2 * time.Second}

// feedLoop keeps a fed edge following a feeder until the node closes: a
// stream that breaks, stays silent for peer.LogSilence or sends a frame
// that does not continue the state moves it to the next feeder of
// feeders(), resuming from its applied index; a feeder that compacted
// past that index (410) hands it its snapshot first.
func (n *Node) feedLoop() {
	next := 0
	delay := feedBackoff.First
	for n.ctx.Err() == nil {
		urls := n.feeders()
		if len(urls) == 0 {
			n.log.Warn("fed edge: no feeder known; start it with --feed-from")
			return
		}
		url := urls[next%len(urls)]
		frames, err := n.follow(url)
		if n.ctx.Err() != nil {
			return
		}
		if errors.Is(err, peer.ErrLogGone) {
			if err = n.restoreFrom(url); err == nil {
				continue // stream on from the snapshot's index, same feeder
			}
		}
		n.log.Warn("fed edge: feeder lost, trying the next", "feeder", url, "frames", frames, "applied_index", n.store.AppliedIndex(), "err", err)
		next++
		if frames > 0 {
			delay = feedBackoff.First
			continue
		}
		if next%len(urls) == 0 {
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, feedBackoff.Max)
		}
	}
}

// follow streams url's log into the store until the stream fails; it
// returns the frames applied.
func (n *Node) follow(url string) (int, error) {
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	silent := time.AfterFunc(peer.LogSilence, cancel)
	defer silent.Stop()
	st, err := n.peer.Log(ctx, url, n.store.AppliedIndex())
	if err != nil {
		return 0, err
	}
	defer st.Close()
	for frames := 0; ; frames++ {
		f, err := st.ReadFrame()
		if err != nil {
			if ctx.Err() != nil && n.ctx.Err() == nil {
				err = fmt.Errorf("no frame for %v: %w", peer.LogSilence, err)
			}
			return frames, err
		}
		silent.Reset(peer.LogSilence)
		if err := n.store.ApplyFeed(f.Feed()); err != nil {
			return frames, err
		}
		if frames == 0 {
			id := f.Feeder
			n.feed.feeder.Store(&id)
			n.log.Info("fed edge: following", "feeder", id, "applied_index", n.store.AppliedIndex())
			n.recordFeeder(id)
		}
	}
}

// restoreFrom replaces this fed edge's state with the feeder's snapshot
// (checked whole before it replaces anything).
func (n *Node) restoreFrom(url string) error {
	ctx, cancel := context.WithTimeout(n.ctx, 30*time.Minute)
	defer cancel()
	rc, err := n.peer.Snapshot(ctx, url)
	if err != nil {
		return fmt.Errorf("snapshot of %s: %w", url, err)
	}
	defer rc.Close()
	start := time.Now()
	if err := n.store.RestoreFeed(rc); err != nil {
		return fmt.Errorf("restore the snapshot of %s: %w", url, err)
	}
	n.log.Info("fed edge: restored the feeder's snapshot", "feeder", url, "applied_index", n.store.AppliedIndex(), "took", time.Since(start))
	return nil
}
