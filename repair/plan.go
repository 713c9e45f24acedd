package repair

import (
	"maps"
	"slices"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/placement"
)

// Answer is what one node said when asked which of some blobs it holds.
type Answer struct {
	Held map[string]bool // the blobs it holds among those it was asked about
	Err  error           // it could not be asked (unreachable); Held is empty
}

// Holdings is what a census gathered.
type Holdings struct {
	// Owners maps each owner id to its answer about the referenced blobs
	// it owns. An owner without an answer counts as unreachable.
	Owners map[string]Answer
	// Elsewhere counts, for the referenced blobs no owner holds, the nodes
	// of the cluster (removed ones excepted) that hold them.
	Elsewhere map[string]int
}

// Pull asks one owner to fetch the blobs it lacks. The owner fetches each
// from its holders itself: the other owners in placement order, then any
// node (node's read-through fetch).
type Pull struct {
	Node   atoll.Node
	Hashes []string // in hash order
}

// Plan is what a census decided from its Holdings.
type Plan struct {
	Pulls []Pull // by node id
	// OnOwners counts, per referenced blob, the owners that hold it.
	OnOwners map[string]int
	// NotUploaded holds the blobs on no node that only uploads in progress
	// name: never uploaded (yet), so there is nothing to copy and nothing
	// was lost; they are neither missing nor under-replicated, and no owner
	// is asked to pull them.
	NotUploaded map[string]bool
	Referenced  int
	Missing     int // referenced by a complete deploy, on no node at all
	// UnderReplicated counts the blobs on fewer than R owners before the
	// pulls; the census reports the count after them.
	UnderReplicated int
}

// Decide plans a census: given the referenced blobs (true: only uploads
// in progress name it), the placement and what the owners and the other
// nodes reported, which owner pulls which blob, and the report's counts.
// An unreachable owner is neither counted as holding its blobs nor asked
// to pull them. It does no I/O.
func Decide(ref map[string]bool, view *placement.View, h Holdings) Plan {
	onOwners := countOnOwners(ref, view, h.Owners)
	p := Plan{OnOwners: onOwners, NotUploaded: map[string]bool{}, Referenced: len(ref)}
	for _, hash := range orphans(ref, onOwners) {
		switch {
		case h.Elsewhere[hash] > 0:
		case ref[hash]:
			p.NotUploaded[hash] = true
		default:
			p.Missing++
		}
	}
	pulls := map[string]*Pull{}
	for _, hash := range slices.Sorted(maps.Keys(ref)) {
		if p.NotUploaded[hash] {
			continue
		}
		for _, o := range view.Owners(hash) {
			a, ok := h.Owners[o.ID]
			if !ok || a.Err != nil || a.Held[hash] {
				continue
			}
			if pulls[o.ID] == nil {
				pulls[o.ID] = &Pull{Node: o}
			}
			pulls[o.ID].Hashes = append(pulls[o.ID].Hashes, hash)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(pulls)) {
		p.Pulls = append(p.Pulls, *pulls[id])
	}
	p.UnderReplicated = underReplicated(ref, view.Replicas(), onOwners, p.NotUploaded)
	return p
}

// countOnOwners counts, per referenced blob, the owners whose answer says
// they hold it.
func countOnOwners(ref map[string]bool, view *placement.View, owners map[string]Answer) map[string]int {
	on := make(map[string]int, len(ref))
	for hash := range ref {
		for _, o := range view.Owners(hash) {
			if a := owners[o.ID]; a.Err == nil && a.Held[hash] {
				on[hash]++
			}
		}
	}
	return on
}

// orphans returns the referenced blobs on no owner, in hash order.
func orphans(ref map[string]bool, onOwners map[string]int) []string {
	var out []string
	for _, hash := range slices.Sorted(maps.Keys(ref)) {
		if onOwners[hash] == 0 {
			out = append(out, hash)
		}
	}
	return out
}

// underReplicated counts the referenced blobs on fewer than replicas
// owners, never-uploaded ones aside.
func underReplicated(ref map[string]bool, replicas int, onOwners map[string]int, notUploaded map[string]bool) int {
	n := 0
	for hash := range ref {
		if onOwners[hash] < replicas && !notUploaded[hash] {
			n++
		}
	}
	return n
}

// Push hands one blob this node holds without owning it to the owners
// that lack it, in placement order.
type Push struct {
	Hash string
	To   []atoll.Node
}

// handOff plans the local pass's hand-over of the blobs this node holds
// without owning them (hashes): the ones every owner holds are confirmed
// (this copy is only a cache), the others pushed to the owners that lack
// them. An owner that could not be asked counts as lacking them all. It
// does no I/O.
func handOff(hashes []string, view *placement.View, owners map[string]Answer) (confirmed []string, pushes []Push) {
	for _, hash := range hashes {
		var lacking []atoll.Node
		for _, o := range view.Owners(hash) {
			if a := owners[o.ID]; a.Err != nil || !a.Held[hash] {
				lacking = append(lacking, o)
			}
		}
		if len(lacking) == 0 {
			confirmed = append(confirmed, hash)
		} else {
			pushes = append(pushes, Push{Hash: hash, To: lacking})
		}
	}
	return confirmed, pushes
}
