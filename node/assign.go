package node

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/raft"
)

// Automatic assignment (docs/FANOUT.md, "Design: edges fed by relays",
// item 7). A new edge started with --join and without --feed-from joins
// before it opens its store, with ?assign=1 (it can be fed). The leader,
// serialized with every other join by memberMu, keeps at most
// Config.MaxDirectEdges edges as Raft non-voters; beyond them it records
// the edge as a fed edge (Node.Feeder, atoll.LevelFedEdges) of the relay,
// a Raft member edge, that feeds the fewest, and answers which. The edge
// then opens a fed edge's store or a Raft member's, for the life of its
// data dir. Below LevelFedEdges, and for a joining binary that does not
// ask, the edge is a non-voter as before.

// feedPlan is what the leader makes of an edge that can be fed: a Raft
// non-voter (Direct), or a fed edge of the first of Feeders that answers.
type feedPlan struct {
	Direct  bool
	Feeders []atoll.Node
}

// planFeed decides for edge id joining a cluster whose node table is
// table. Edges that are Raft members (no Feeder, not removed, draining
// ones included: the leader still feeds them) count against maxDirect;
// while fewer, the edge is direct. Otherwise the candidates are the
// active Raft member edges, fewest fed edges first (ties by id), then the
// active cores the same way with the leader last, so that a cluster whose
// relays are all down or draining still feeds the edge without raising
// the leader's count of followers.
func planFeed(table []atoll.Node, id string, maxDirect int, leader string) feedPlan {
	fed := make(map[string]int)
	direct := 0
	for _, nd := range table {
		switch {
		case nd.ID == id || nd.State == atoll.NodeRemoved:
		case nd.Feeder != "":
			fed[nd.Feeder]++
		case nd.Role == atoll.RoleEdge:
			direct++
		}
	}
	if direct < maxDirect {
		return feedPlan{Direct: true}
	}
	var relays, cores []atoll.Node
	for _, nd := range table {
		switch {
		case nd.ID == id || nd.Feeder != "" || nd.State != atoll.NodeActive || nd.APIAddr == "":
		case nd.Role == atoll.RoleEdge:
			relays = append(relays, nd)
		default:
			cores = append(cores, nd)
		}
	}
	byLoad := func(a, b atoll.Node) int {
		isLeader := func(nd atoll.Node) int {
			if nd.ID == leader {
				return 1
			}
			return 0
		}
		return cmp.Or(cmp.Compare(isLeader(a), isLeader(b)), cmp.Compare(fed[a.ID], fed[b.ID]), cmp.Compare(a.ID, b.ID))
	}
	slices.SortFunc(relays, byLoad)
	slices.SortFunc(cores, byLoad)
	return feedPlan{Feeders: append(relays, cores...)}
}

// pickFeeder returns the first of candidates that up says can feed now.
func pickFeeder(ctx context.Context, candidates []atoll.Node, up func(context.Context, atoll.Node) bool) (atoll.Node, bool) {
	for _, nd := range candidates {
		if up(ctx, nd) {
			return nd, true
		}
	}
	return atoll.Node{}, false
}

// feederProbeTimeout bounds the leader's check that a candidate relay
// answers, so that a relay cut off holds up a join by this much at most.
const feederProbeTimeout = 2 * time.Second

// canFeedNow reports whether nd answers its stats as a Raft member: this
// node (the leader) always can.
func (n *Node) canFeedNow(ctx context.Context, nd atoll.Node) bool {
	if nd.ID == n.cfg.ID {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, feederProbeTimeout)
	defer cancel()
	st, err := n.peer.Stats(ctx, n.peerURL(nd.APIAddr))
	return err == nil && st.RaftState != raft.StateFed
}

// assignFeeder is the leader's choice for nd, a new edge that can be fed:
// the id of the node it is to follow, or "" for a Raft non-voter. A node
// the table already holds keeps what it is (a restart, a retried join);
// below atoll.LevelFedEdges every edge is a non-voter. The caller holds
// memberMu and records the choice before it lets the next join decide.
func (n *Node) assignFeeder(ctx context.Context, nd atoll.Node) (string, error) {
	if old, ok := n.nodeByID(nd.ID); ok && old.State != atoll.NodeRemoved {
		return old.Feeder, nil
	}
	if n.store.FeatureLevel() < atoll.LevelFedEdges {
		return "", nil
	}
	table, err := n.store.Nodes()
	if err != nil {
		return "", err
	}
	plan := planFeed(table, nd.ID, n.cfg.MaxDirectEdges, n.cfg.ID)
	if plan.Direct {
		return "", nil
	}
	feeder, ok := pickFeeder(ctx, plan.Feeders, n.canFeedNow)
	if !ok {
		n.log.Warn("no node can feed a new edge: it joins as a Raft non-voter", "id", nd.ID, "max_direct_edges", n.cfg.MaxDirectEdges)
		return "", nil
	}
	return feeder.ID, nil
}

// joinAssigned is the join of a new edge started with --join and without
// --feed-from, before its store opens: it reports whether the leader made
// it a fed edge (then the feeder to follow first is set) or a Raft
// non-voter.
func (n *Node) joinAssigned(ctx context.Context) (bool, error) {
	if err := n.bindListeners(); err != nil { // the request names their addresses
		return false, err
	}
	var res atoll.JoinResponse
	err := n.retryJoin(ctx, n.cfg.Join, func(ctx context.Context) (err error) {
		res, err = n.peer.JoinAssigned(ctx, n.cfg.Join, n.joinRequest())
		return err
	})
	if err != nil {
		return false, err
	}
	n.joined = true
	if res.Feeder == "" || res.FeederAPIAddr == "" {
		n.log.Info("joined cluster as a raft non-voter", "via", n.cfg.Join)
		return false, nil
	}
	n.feed.feeder.Store(&res.Feeder)
	n.feed.first = n.peerURL(res.FeederAPIAddr)
	n.log.Info("joined cluster as a fed edge", "via", n.cfg.Join, "feeder", res.Feeder)
	return true, nil
}
