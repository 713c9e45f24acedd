package serve

import (
	"bytes"
	"encoding/binary"
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
// manifest in memory (deployIndex): one arena of entries (the 32 raw bytes
// of the content hash next to the path), and an open-addressing table of
// arena offsets keyed by a hash of the path: about 34 bytes plus the path
// plus 16 bytes of table per entry. A lookup takes no lock and allocates
// nothing; a route is made (one small allocation: the route with its hex
// hash) the first time an entry is served and kept in a direct-mapped
// cache of indexRouteSlots, so hot paths of a large deploy cost what they
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
//
// A lookup that finds its path touches three places in memory, not one per
// array: its slot in the table, its entry in the arena (hash and path side
// by side), and its route slot.
type deployIndex struct {
	seed  maphash.Seed
	count int // entries
	// arena holds the entries in manifest order, each the 32 raw bytes of
	// the content hash, the path's length (2 bytes, little-endian) and the
	// path, in blocks of blockSize (an entry never straddles two), so that
	// building it never copies it nor reserves more than one block ahead.
	// An entry's offset is its block's index << blockBits plus its place
	// in the block.
	arena [][]byte
	// slots is the open-addressing table (linear probing, at most half
	// full): 0 is empty, else the high 32 bits of the path's hash in the
	// upper half and the entry's offset in arena plus 1 in the lower.
	slots []uint64
	mask  uint64

	routes   []atomic.Pointer[pathRoute] // by table slot & (len-1): the entry's file route
	notFound *pathRoute                  // shared miss route (never ruled: rules deploys get no index)
	bytes    int64                       // memory held, for the budget
}

// entryHead is the size of an arena entry before its path.
const entryHead = 32 + 2

// Arena blocks: offsets (plus 1) fit in 32 bits.
const (
	blockBits = 20
	blockSize = 1 << blockBits
	maxBlocks = 1<<(32-blockBits) - 1
)

// indexBytesFor is the planned size of an index of n entries, before it is
// built (paths of indexPathGuess bytes).
func indexBytesFor(n int) int64 {
	table := int64(tableSize(n)) * 8
	return int64(n)*(entryHead+indexPathGuess) + table + int64(min(routeSlots(n), indexRouteSlots))*8
}

func tableSize(n int) int { return 1 << bits.Len(uint(2*n)) } // > 2n: at most half full

func routeSlots(n int) int { return 1 << bits.Len(uint(max(n-1, 1))) }

// buildIndex reads deploy id's manifest of (about) n entries from sc.
func buildIndex(sc ManifestScanner, id string, n int) (*deployIndex, error) {
	ix := &deployIndex{
		seed:     maphash.MakeSeed(),
		notFound: &pathRoute{kind: routeNotFound},
	}
	err := sc.ScanManifest(id, func(path, sum []byte) error {
		if len(sum) != 32 || len(path) > math.MaxUint16 {
			return fmt.Errorf("entry %q: hash of %d bytes, path of %d", path, len(sum), len(path))
		}
		if len(ix.arena) == 0 || len(ix.arena[len(ix.arena)-1])+entryHead+len(path) > blockSize {
			if len(ix.arena) == maxBlocks {
				return errIndexTooBig
			}
			ix.arena = append(ix.arena, make([]byte, 0, blockSize))
		}
		b := &ix.arena[len(ix.arena)-1]
		*b = append(*b, sum...)
		*b = binary.LittleEndian.AppendUint16(*b, uint16(len(path)))
		*b = append(*b, path...)
		ix.count++
		return nil
	})
	if err != nil {
		return nil, err
	}
	var size int
	if last := len(ix.arena) - 1; last >= 0 {
		ix.arena[last] = slices.Clip(slices.Clone(ix.arena[last])) // the unused end of the last block
		size = last*blockSize + len(ix.arena[last])
	}
	ix.slots = make([]uint64, tableSize(ix.count))
	ix.mask = uint64(len(ix.slots) - 1)
	for bi, b := range ix.arena {
		for o := 0; o < len(b); o += entryHead + int(binary.LittleEndian.Uint16(b[o+32:])) {
			off := bi<<blockBits | o
			h := maphash.Bytes(ix.seed, ix.path(off))
			i := h & ix.mask
			for ix.slots[i] != 0 {
				i = (i + 1) & ix.mask
			}
			ix.slots[i] = h>>32<<32 | uint64(off+1)
		}
	}
	ix.routes = make([]atomic.Pointer[pathRoute], min(routeSlots(ix.count), indexRouteSlots))
	ix.bytes = int64(size + 8*len(ix.slots) + 8*len(ix.routes))
	return ix, nil
}

// entry returns the arena from the entry at offset off on.
func (ix *deployIndex) entry(off int) []byte {
	return ix.arena[off>>blockBits][off&(blockSize-1):]
}

// path is the path of the entry at arena offset off.
func (ix *deployIndex) path(off int) []byte {
	e := ix.entry(off)
	n := int(binary.LittleEndian.Uint16(e[32:]))
	return e[entryHead : entryHead+n]
}

// find returns the table slot and arena offset of manifest path p.
func (ix *deployIndex) find(p []byte) (slot uint64, off int, ok bool) {
	h := maphash.Bytes(ix.seed, p)
	tag := h >> 32
	for i := h & ix.mask; ; i = (i + 1) & ix.mask {
		s := ix.slots[i]
		if s == 0 {
			return 0, 0, false
		}
		if s>>32 == tag {
			if off := int(uint32(s)) - 1; bytes.Equal(ix.path(off), p) {
				return i, off, true
			}
		}
	}
}

// findWith finds manifest path p+suffix, joined in buf (which must have
// room for both) so that nothing is allocated.
func (ix *deployIndex) findWith(buf []byte, p []byte, suffix string) (slot uint64, off int, ok bool) {
	return ix.find(append(append(buf[:0], p...), suffix...))
}

// fileRoute returns the route serving the entry at table slot i and arena
// offset off. Its file is a string sharing the arena, which is never
// written once built.
func (ix *deployIndex) fileRoute(i uint64, off int) *pathRoute {
	slot := &ix.routes[i&uint64(len(ix.routes)-1)]
	p := ix.path(off)
	if r := slot.Load(); r != nil && len(r.file) == len(p) && unsafe.StringData(r.file) == &p[0] {
		return r
	}
	r := ix.newFileRoute(p, ix.entry(off)[:32])
	slot.Store(r)
	return r
}

// indexRoute is a file route made by an index together with the hex form
// of its content hash, which its hash string shares: one allocation per
// route rather than two (random paths over a large deploy make one route
// per request).
type indexRoute struct {
	pathRoute
	hex [2 * 32]byte
}

// newFileRoute makes the route serving path p (in the arena) whose content
// hash is sum (32 raw bytes): fileRoute's route, in one allocation.
func (ix *deployIndex) newFileRoute(p, sum []byte) *pathRoute {
	ir := new(indexRoute)
	hex.Encode(ir.hex[:], sum)
	r := &ir.pathRoute
	r.kind = routeFile
	r.file = unsafe.String(&p[0], len(p))
	r.hash = unsafe.String(&ir.hex[0], len(ir.hex))
	r.ctype = contentType(r.file)
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
	if i, off, ok := ix.find(p); ok {
		return ix.fileRoute(i, off)
	}
	if _, _, ok := ix.findWith(buf[:], p, "/"+indexFile); ok {
		return &pathRoute{kind: routeRedirect, file: string(p)}
	}
	return ix.fileOrNotFound(buf[:], p, ".html")
}

func (ix *deployIndex) fileOrNotFound(buf, p []byte, suffix string) *pathRoute {
	if i, off, ok := ix.findWith(buf, p, suffix); ok {
		return ix.fileRoute(i, off)
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
