// Package placement decides which nodes own a blob: the top R active core
// nodes by rendezvous (highest random weight) hashing of (node id, blob
// hash). Every node computes the same owners from the replicated node
// table, so no per-blob location is ever stored; adding or removing a node
// moves only the blobs whose top R changes (about R/N of them).
//
// It is pure computation over a node table it is given. It must never read
// the replicated state, do I/O or keep state between calls: a View is
// immutable, and a new one replaces it when the node table changes.
package placement

import (
	"hash/fnv"
	"slices"

	"github.com/atoll-hosting/atoll"
)

// View is an immutable view of the node table for computing owners. Its
// methods never modify it; the slices they return must not be modified
// either.
type View struct {
	replicas int          // R, already capped at len(cores)
	cores    []atoll.Node // active core nodes, by id
	all      []atoll.Node // every node in the table, by id
}

// New builds a view of the node table nodes with the replication factor
// replicas: R is replicas, at least 1 and at most the number of active
// core nodes.
func New(nodes []atoll.Node, replicas int) *View {
	p := &View{all: slices.Clone(nodes)}
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

// Replicas is R: how many owners each blob has.
func (p *View) Replicas() int { return p.replicas }

// Cores returns the active core nodes, the candidates for ownership.
func (p *View) Cores() []atoll.Node { return p.cores }

// All returns every node of the node table, removed ones included.
func (p *View) All() []atoll.Node { return p.all }

// Owners returns the R owners of hash, best first.
func (p *View) Owners(hash string) []atoll.Node {
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

// Owns reports whether node id is among the owners of hash.
func (p *View) Owns(id, hash string) bool {
	for _, n := range p.Owners(hash) {
		if n.ID == id {
			return true
		}
	}
	return false
}

// Quorum is how many owners must hold a blob before it counts as stored:
// a majority of R.
func (p *View) Quorum() int { return p.replicas/2 + 1 }

// Sources returns the nodes to fetch hash from, in order: its owners by
// rank, then every other node (a draining node, or one that holds a copy
// from before a membership change), never self.
func (p *View) Sources(hash, self string) []atoll.Node {
	owners := p.Owners(hash)
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
