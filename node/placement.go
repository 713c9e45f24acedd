package node

import (
	"hash/fnv"
	"slices"

	"github.com/atoll-hosting/atoll"
)

// Placement: the owners of a blob are the top R active core nodes by
// rendezvous (highest random weight) hashing of (node id, blob hash). Every
// node computes the same owners from the replicated node table, so no
// per-blob location is ever stored; adding or removing a node moves only the
// blobs whose top R changes (about R/N of them).

// placement is an immutable view of the node table for computing owners.
type placement struct {
	replicas int          // R, already capped at len(cores)
	cores    []atoll.Node // active core nodes, by id
	all      []atoll.Node // every node in the table, by id
}

// newPlacement builds a placement from the node table and the configured
// replication factor.
func newPlacement(nodes []atoll.Node, replicas int) *placement {
	p := &placement{all: slices.Clone(nodes)}
	for _, n := range nodes {
		if n.Role == atoll.RoleCore && n.State == atoll.NodeActive {
			p.cores = append(p.cores, n)
		}
	}
	p.replicas = min(max(replicas, 1), len(p.cores))
	return p
}

// score is the rendezvous weight of node id for blob hash: FNV-1a over
// both, finished with a 64-bit mixer so that ids differing in one byte
// still spread evenly.
func score(id, hash string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(hash))
	x := h.Sum64()
	// splitmix64 finalizer
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// owners returns the R owners of hash, best first.
func (p *placement) owners(hash string) []atoll.Node {
	type scored struct {
		n atoll.Node
		s uint64
	}
	ranked := make([]scored, len(p.cores))
	for i, n := range p.cores {
		ranked[i] = scored{n, score(n.ID, hash)}
	}
	slices.SortFunc(ranked, func(a, b scored) int {
		switch {
		case a.s > b.s:
			return -1
		case a.s < b.s:
			return 1
		}
		return 0
	})
	out := make([]atoll.Node, p.replicas)
	for i := range out {
		out[i] = ranked[i].n
	}
	return out
}

// owns reports whether node id is among the owners of hash.
func (p *placement) owns(id, hash string) bool {
	for _, n := range p.owners(hash) {
		if n.ID == id {
			return true
		}
	}
	return false
}

// quorum is how many owners must hold a blob before it counts as stored:
// a majority of R.
func (p *placement) quorum() int { return p.replicas/2 + 1 }

// sources returns the nodes to fetch hash from, in order: its owners by
// rank, then every other node (a draining node, or one that holds a copy
// from before a membership change), never self.
func (p *placement) sources(hash, self string) []atoll.Node {
	owners := p.owners(hash)
	out := make([]atoll.Node, 0, len(p.all))
	for _, n := range owners {
		if n.ID != self {
			out = append(out, n)
		}
	}
	for _, n := range p.all {
		if n.ID != self && n.State != atoll.NodeRemoved && !slices.ContainsFunc(owners, func(o atoll.Node) bool { return o.ID == n.ID }) {
			out = append(out, n)
		}
	}
	return out
}
