package node

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/raft"
)

// The cluster's feature level (atoll.MaxFeatureLevel) is raised by the
// leader once every member of the cluster runs a binary that knows a
// higher one. The members are every server of the Raft configuration
// (voters and edges) and every node of the node table not removed; each
// tells the highest level its binary knows in its peer stats, and one that
// does not answer holds the level back. The leader asks them every
// featureCheckInterval and whenever the membership changes, while the
// cluster is below the highest level this binary knows; a single node
// reaches it right after start.

// knownFeatureLevel is the highest feature level this node tells the
// cluster its binary knows: atoll.MaxFeatureLevel; the tests of a rolling
// upgrade lower it to play nodes of an older binary.
var knownFeatureLevel = atoll.MaxFeatureLevel

const (
	// featureCheckInterval is how often the leader asks every node which
	// feature levels its binary knows, while the cluster is below the
	// highest level this binary knows.
	featureCheckInterval = 5 * time.Second
	// binariesFresh is how long the last census of the members' binaries
	// stands in for a new one when a call needs a level the cluster has not
	// reached (RequireFeature): such a refusal costs no network call then.
	binariesFresh = 10 * time.Second
)

// memberBinary is what the cluster knows of one member's binary.
type memberBinary struct {
	ID      string
	Version string // "" when the node did not report one
	Level   int    // highest feature level its binary knows; 0 when unknown
	Why     string // why Level is unknown, e.g. "unreachable"
}

// String names the member as a FeatureError's HeldBy does, e.g.
// "edge-1 (version unknown, level 1)" or "core-2 (unreachable)".
func (m memberBinary) String() string {
	if m.Level == 0 {
		return fmt.Sprintf("%s (%s)", m.ID, m.Why)
	}
	v := m.Version
	if v == "" {
		v = "version unknown"
	}
	return fmt.Sprintf("%s (%s, level %d)", m.ID, v, m.Level)
}

// binaryCensus is one look at every member's binary.
type binaryCensus struct {
	at      time.Time
	key     string // membersKey of the membership it covered
	members []memberBinary
}

// level returns the highest feature level every member knows, or 0 when
// some member's is unknown (it holds the level back).
func (c *binaryCensus) level() int {
	if c == nil || len(c.members) == 0 {
		return 0
	}
	level := c.members[0].Level
	for _, m := range c.members[1:] {
		level = min(level, m.Level)
	}
	return level
}

// heldBy names the members whose binary does not know level, or is
// unknown, in id order.
func (c *binaryCensus) heldBy(level int) []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, m := range c.members {
		if m.Level < level {
			out = append(out, m.String())
		}
	}
	return out
}

// clusterMembers returns the ids of the members whose binaries decide the
// feature level: every server of the Raft configuration and every entry
// of the node table not removed, sorted, with the table's entries by id.
func clusterMembers(servers []raft.Server, table []atoll.Node) ([]string, map[string]atoll.Node) {
	byID := make(map[string]atoll.Node, len(table))
	var ids []string
	for _, nd := range table {
		if nd.State != atoll.NodeRemoved {
			byID[nd.ID] = nd
			ids = append(ids, nd.ID)
		}
	}
	for _, s := range servers {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	return slices.Compact(ids), byID
}

// membersKey identifies a membership: its ids, sorted.
func membersKey(ids []string) string { return strings.Join(ids, ",") }

// censusOf makes the census of ids from the stats they answered: a member
// missing from the node table cannot be asked, one missing from stats or
// that did not answer is unreachable.
func censusOf(ids []string, table map[string]atoll.Node, stats map[string]peer.Stats, at time.Time) *binaryCensus {
	c := &binaryCensus{at: at, key: membersKey(ids)}
	for _, id := range ids {
		m := memberBinary{ID: id}
		st, asked := stats[id]
		switch {
		case table[id].ID == "":
			m.Why = "not in the node table yet"
		case !asked || st.RaftState == unreachable:
			m.Why = unreachable
		default:
			m.Version, m.Level = st.Binary()
		}
		c.members = append(c.members, m)
	}
	return c
}

// members reads the current membership from the replicated state.
func (n *Node) members() ([]string, map[string]atoll.Node, error) {
	servers, err := n.store.Servers()
	if err != nil {
		return nil, nil, err
	}
	table, err := n.store.Nodes()
	if err != nil {
		return nil, nil, err
	}
	ids, byID := clusterMembers(servers, table)
	return ids, byID, nil
}

// noteBinaries records, from a stats fan-out over table (which the status
// code makes anyway), the census of the members' binaries, and returns it.
func (n *Node) noteBinaries(stats map[string]peer.Stats) *binaryCensus {
	ids, byID, err := n.members()
	if err != nil {
		return n.binaries.Load()
	}
	c := censusOf(ids, byID, stats, time.Now())
	n.binaries.Store(c)
	return c
}

// takeBinaryCensus asks every member for its stats and records the census.
func (n *Node) takeBinaryCensus(ctx context.Context) *binaryCensus {
	ids, byID, err := n.members()
	if err != nil {
		return n.binaries.Load()
	}
	var ask []atoll.Node
	for _, id := range ids {
		if nd, ok := byID[id]; ok {
			ask = append(ask, nd)
		}
	}
	c := censusOf(ids, byID, n.fanOutStats(ctx, ask), time.Now())
	n.binaries.Store(c)
	return c
}

// recentBinaries returns the last census if it is fresh and covered the
// current membership, else takes one.
func (n *Node) recentBinaries(ctx context.Context) *binaryCensus {
	c := n.binaries.Load()
	if ids, _, err := n.members(); err == nil && c != nil && c.key == membersKey(ids) && time.Since(c.at) < binariesFresh {
		return c
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return n.takeBinaryCensus(ctx)
}

// RequireFeature is builder.Config.RequireFeature: nil when the cluster's
// feature level is at least level, else an *atoll.FeatureError (409)
// naming the members that hold it back, from the last census when it is
// fresh (binariesFresh).
func (n *Node) RequireFeature(ctx context.Context, feature string, level int) error {
	have := n.store.FeatureLevel()
	if have >= level {
		return nil
	}
	return &atoll.FeatureError{Feature: feature, Need: level, Have: have, HeldBy: n.recentBinaries(ctx).heldBy(level)}
}

// featureLoop raises the cluster's feature level while this node leads:
// at once, every featureCheckInterval and whenever the membership changes,
// until the cluster reaches the highest level this binary knows.
func (n *Node) featureLoop() {
	t := time.NewTicker(featureCheckInterval)
	defer t.Stop()
	lastKey := ""
	for n.store.FeatureLevel() < atoll.MaxFeatureLevel {
		leader, state := n.store.LeaderChanged(), n.store.Changed()
		if n.store.IsLeader() && n.store.StorageFailed() == nil {
			n.raiseFeatureLevel()
		}
		for wait := true; wait; {
			select {
			case <-n.ctx.Done():
				return
			case <-t.C:
				wait = false
			case <-leader:
				wait = false
			case <-state:
				// Every applied batch wakes this; only a change of the
				// membership counts, and only on the leader.
				state = n.store.Changed()
				if !n.store.IsLeader() {
					continue
				}
				if ids, _, err := n.members(); err == nil && membersKey(ids) != lastKey {
					lastKey, wait = membersKey(ids), false
				}
			}
		}
	}
}

// raiseFeatureLevel takes a census of the members' binaries and, if every
// one knows a level above the cluster's, raises the cluster to the highest
// level they all know. A membership that changed during the census (a node
// joined) makes it wait for the next round: joins and raises are
// serialized by memberMu, so a node refused by neither is never left below
// the level.
func (n *Node) raiseFeatureLevel() {
	ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
	defer cancel()
	have := n.store.FeatureLevel()
	c := n.takeBinaryCensus(ctx)
	to := min(c.level(), atoll.MaxFeatureLevel)
	if to <= have {
		return
	}
	n.memberMu.Lock()
	defer n.memberMu.Unlock()
	if ids, _, err := n.members(); err != nil || membersKey(ids) != c.key {
		return
	}
	if err := n.apply(ctx, raft.SetFeatureLevel{Level: to}); err != nil {
		if n.ctx.Err() == nil {
			n.log.Warn("raise the cluster feature level", "to", to, "err", err)
		}
		return
	}
	n.log.Info("cluster feature level raised: every node runs a binary that knows it", "from", have, "to", to, "nodes", len(c.members))
}

// admitBinary refuses, with one line saying what to do, a joining node
// whose binary knows less than the cluster's feature level. A node that
// joins by itself announces its binary on the request (peer.SenderBinary);
// one an operator adds is asked for its stats, and refused if it cannot
// be asked while the cluster is above atoll.LevelBase. The caller holds
// memberMu.
func (n *Node) admitBinary(r *http.Request, nd atoll.Node) error {
	have := n.store.FeatureLevel()
	if have <= atoll.LevelBase {
		return nil // every binary knows the base level
	}
	version, level := peer.SenderBinary(r)
	if !peer.KeyOK(r, n.cfg.ClusterKey) {
		st, err := n.statsOf(r.Context(), nd)
		if err != nil {
			return fmt.Errorf("%w: cannot ask node %s at %s which feature levels its binary knows (%v); the cluster is at level %d: start the node, then add it",
				atoll.ErrConflict, nd.ID, nd.APIAddr, err, have)
		}
		version, level = st.Binary()
	}
	if level >= have {
		return nil
	}
	if version == "" {
		version = "a version from before feature levels"
	}
	err := fmt.Errorf("%w: node %s runs atoll %s, which knows feature levels up to %d, and the cluster is at level %d: run atoll %s or newer on it",
		atoll.ErrConflict, nd.ID, version, level, have, n.cfg.Version)
	n.log.Warn("join refused: the node's binary is older than the cluster's feature level", "id", nd.ID, "version", version, "level", level, "cluster_level", have)
	return err
}
