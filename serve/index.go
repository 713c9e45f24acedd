package serve

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
	"sync/atomic"
	"unsafe"
)

// The index of a large deploy.
//
// The path cache (pathTable) holds maxPaths routes per deploy. A deploy
// with more entries than that, requested at random, misses it on most
// requests, and each miss reads bbolt: a read transaction, two bucket
// lookups and a B+tree search over pages the rest of the state shares
// (several microseconds, and more as the state grows). For such a deploy
// the edge keeps, while it is a site's live deploy, a compact copy of its
// manifest in memory (deployIndex): every path in one arena, the 32 raw
// bytes of every content hash, and an open-addressing table keyed by a
// hash of the path. A lookup takes no lock and allocates nothing; a route
// is made (one allocation) the first time an entry is served and kept in a
// small direct-mapped cache, so hot paths of a large deploy cost what they
// cost on a small one, and random ones cause no insertion churn in a
// shared map.
//
// Which deploys get one (indexSet, planIndexes): a deploy with more than
// IndexMinEntries entries and no site rules, once it is requested and
// while it is the published deploy of its site; the live deploys with the
// most entries first, within Config.IndexBytes (DefaultIndexBytes). The
// others read bbolt as before. An index is built in the background by one
// goroutine at a time (requests read bbolt meanwhile), re-planned after
// every change of the Catalog, and dropped once its deploy is no longer
// published (a publish of another deploy, a rollback, a deletion).
//
// Exactness: a complete deploy's manifest never changes, and only complete
// deploys are served, so an index built from ScanManifest answers exactly
// what File answers (TestIndexMatchesCatalog compares both).

// Index bounds and defaults.
const (
	// IndexMinEntries: by default (Config.IndexMinEntries), a deploy with
	// more manifest entries than this gets an index (within
	// Config.IndexBytes). Up to it, the path cache holds its whole working
	// set.
	IndexMinEntries = maxPaths
	// DefaultIndexBytes is the memory for deploy indexes when
	// Config.IndexBytes is 0: about 4M entries of 30-byte paths.
	DefaultIndexBytes = 256 << 20
	// indexRouteSlots bounds the direct-mapped route cache of one index.
	indexRouteSlots = 1 << 14
	// indexPathGuess is the mean path length assumed to plan an index
	// before it is built; once built, its real size counts.
	indexPathGuess = 48
)

// ManifestScanner is implemented by a Catalog that hands out a deploy's
// whole manifest, as *raft.FSM does: fn gets every path with the 32 raw
// bytes of its content hash, valid only during the call. Without it, no
// deploy gets an index.
type ManifestScanner interface {
	ScanManifest(deployID string, fn func(path, sum []byte) error) error
}

var errIndexTooBig = errors.New("manifest too big for an index")

// deployIndex is the in-memory manifest of one complete deploy. It is
// immutable once built, except for the route cache, whose slots are
// atomic.
type deployIndex struct {
	seed  maphash.Seed
	arena []byte   // every path, in manifest order
	ends  []uint32 // ends[i] is where path i ends in arena; it starts at ends[i-1] (0 for i = 0)
	sums  []byte   // 32 bytes of content hash per entry
	// slots is the open-addressing table (linear probing, at most half
	// full): 0 is empty, else the high 32 bits of the path's hash in the
	// upper half and entry+1 in the lower.
	slots []uint64
	mask  uint64

	routes   []atomic.Pointer[pathRoute] // by entry & (len-1): the entry's file route
	notFound *pathRoute                  // shared miss route (never ruled: rules deploys get no index)
	bytes    int64                       // memory held, for the budget
}

// indexBytesFor is the planned size of an index of n entries, before it is
// built (paths of indexPathGuess bytes).
func indexBytesFor(n int) int64 {
	table := int64(tableSize(n)) * 8
	return int64(n)*(32+4+indexPathGuess) + table + int64(min(routeSlots(n), indexRouteSlots))*8
}

func tableSize(n int) int { return 1 << bits.Len(uint(2*n)) } // > 2n: at most half full

func routeSlots(n int) int { return 1 << bits.Len(uint(max(n-1, 1))) }

// buildIndex reads deploy id's manifest of (about) n entries from sc.
func buildIndex(sc ManifestScanner, id string, n int) (*deployIndex, error) {
	ix := &deployIndex{
		seed:     maphash.MakeSeed(),
		arena:    make([]byte, 0, n*indexPathGuess),
		ends:     make([]uint32, 0, n),
		sums:     make([]byte, 0, 32*n),
		notFound: &pathRoute{kind: routeNotFound},
	}
	err := sc.ScanManifest(id, func(path, sum []byte) error {
		if len(sum) != 32 {
			return fmt.Errorf("entry %q: hash of %d bytes", path, len(sum))
		}
		if len(ix.arena)+len(path) > math.MaxUint32 || len(ix.ends) == math.MaxUint32-1 {
			return errIndexTooBig
		}
		ix.arena = append(ix.arena, path...)
		ix.ends = append(ix.ends, uint32(len(ix.arena)))
		ix.sums = append(ix.sums, sum...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Appends past the planned capacity leave slack: trim it.
	ix.arena, ix.ends, ix.sums = clip(ix.arena), clip(ix.ends), clip(ix.sums)
	count := len(ix.ends)
	ix.slots = make([]uint64, tableSize(count))
	ix.mask = uint64(len(ix.slots) - 1)
	for e := range count {
		h := maphash.Bytes(ix.seed, ix.path(e))
		i := h & ix.mask
		for ix.slots[i] != 0 {
			i = (i + 1) & ix.mask
		}
		ix.slots[i] = h>>32<<32 | uint64(e+1)
	}
	ix.routes = make([]atomic.Pointer[pathRoute], min(routeSlots(count), indexRouteSlots))
	ix.bytes = int64(cap(ix.arena) + 4*cap(ix.ends) + cap(ix.sums) + 8*len(ix.slots) + 8*len(ix.routes))
	return ix, nil
}

// clip returns s without spare capacity beyond an eighth of its length.
func clip[E any](s []E) []E {
	if cap(s)-len(s) > len(s)/8 {
		return slices.Clone(s)
	}
	return s
}

func (ix *deployIndex) path(e int) []byte {
	start := uint32(0)
	if e > 0 {
		start = ix.ends[e-1]
	}
	return ix.arena[start:ix.ends[e]]
}

// pathString is path e as a string sharing the arena, which is never
// written once built.
func (ix *deployIndex) pathString(e int) string {
	p := ix.path(e)
	if len(p) == 0 {
		return ""
	}
	return unsafe.String(&p[0], len(p))
}

// find returns the entry of manifest path p.
func (ix *deployIndex) find(p []byte) (int, bool) {
	h := maphash.Bytes(ix.seed, p)
	tag := h >> 32
	for i := h & ix.mask; ; i = (i + 1) & ix.mask {
		s := ix.slots[i]
		if s == 0 {
			return 0, false
		}
		if s>>32 == tag {
			if e := int(uint32(s)) - 1; bytes.Equal(ix.path(e), p) {
				return e, true
			}
		}
	}
}

// findWith returns the entry of manifest path p+suffix, joined in buf
// (which must have room for both) so that nothing is allocated.
func (ix *deployIndex) findWith(buf []byte, p []byte, suffix string) (int, bool) {
	return ix.find(append(append(buf[:0], p...), suffix...))
}

// fileRoute returns the route serving entry e.
func (ix *deployIndex) fileRoute(e int) *pathRoute {
	slot := &ix.routes[e&(len(ix.routes)-1)]
	file := ix.pathString(e)
	if r := slot.Load(); r != nil && len(r.file) == len(file) && unsafe.StringData(r.file) == unsafe.StringData(file) {
		return r
	}
	r := fileRoute(file, hex.EncodeToString(ix.sums[32*e:32*e+32]))
	slot.Store(r)
	return r
}

// route applies the path rules of the package documentation to request
// path raw, as findRoute does with the Catalog.
func (ix *deployIndex) route(raw []byte) *pathRoute {
	p := raw
	if !cleanRequestPath(raw) {
		s, ok := requestPath(raw)
		if !ok {
			return ix.notFound
		}
		p = []byte(s)
	}
	var buf [maxRequestPath + len("/"+indexFile)]byte
	if p[len(p)-1] == '/' {
		return ix.fileOrNotFound(buf[:], p, indexFile)
	}
	if e, ok := ix.find(p); ok {
		return ix.fileRoute(e)
	}
	if _, ok := ix.findWith(buf[:], p, "/"+indexFile); ok {
		return &pathRoute{kind: routeRedirect, file: string(p)}
	}
	return ix.fileOrNotFound(buf[:], p, ".html")
}

func (ix *deployIndex) fileOrNotFound(buf, p []byte, suffix string) *pathRoute {
	if e, ok := ix.findWith(buf, p, suffix); ok {
		return ix.fileRoute(e)
	}
	return ix.notFound
}

// cleanRequestPath reports whether requestPath would return raw unchanged:
// not empty, not too long, a leading "/", and no empty, "." or ".."
// segment (a trailing slash is allowed).
func cleanRequestPath(raw []byte) bool {
	if len(raw) == 0 || raw[0] != '/' || len(raw) > maxRequestPath {
		return false
	}
	start := 1 // of the current segment
	for i := 1; i <= len(raw); i++ {
		if i < len(raw) && raw[i] != '/' {
			continue
		}
		switch seg := raw[start:i]; {
		case len(seg) == 0:
			if i != len(raw) { // only the last segment may be empty: a trailing slash
				return false
			}
		case len(seg) == 1 && seg[0] == '.', len(seg) == 2 && seg[0] == '.' && seg[1] == '.':
			return false
		}
		start = i + 1
	}
	return true
}
