package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll/blobstore"
)

// ChangeNotifier is implemented by a Catalog that announces its changes:
// Changed returns a channel closed at the next change of the state (and a
// new channel after that). *raft.FSM and *raft.Store implement it. With it
// the Handler caches what it read from the Catalog; without it every request
// reads the Catalog afresh.
type ChangeNotifier interface {
	Changed() <-chan struct{}
}

// Cache bounds. The memory cache holds what requests read, so every bound
// is on entries a request can create: hosts and deploy views, routes (per
// deploy and in all), blobs, and the bytes of small files
// (Config.CacheBytes).
const (
	// DefaultCacheBytes is the memory for small files' bytes when
	// Config.CacheBytes is 0.
	DefaultCacheBytes = 64 << 20
	// maxCachedFile: files (or variants) up to this size are answered from
	// memory; bigger ones go out with sendfile, where the per-request
	// open(2) is small next to the transfer.
	maxCachedFile = 64 << 10
	// maxHosts bounds the host -> deploy entries of a generation, and the
	// deploy views it keeps, so that an edge of a platform of 100,000
	// sites resolves each host once per state of the Catalog, not on most
	// requests (a resolution reads bbolt and decodes two JSON records).
	// About 1 KiB a host of its own deploy (view, path table, site
	// counters): ~128 MiB at the bound.
	maxHosts = 1 << 17
	maxPaths = 1 << 16 // request path -> outcome entries per deploy
	// maxRoutes bounds the routes of all the path tables a generation
	// holds (~220 B each, ~110 MiB at the bound): without it a visitor
	// asking for every path of every site would fill sites x maxPaths.
	maxRoutes = 1 << 19
	maxBlobs  = 1 << 16 // blob infos shared by all deploys
)

// The cache, and why it is correct.
//
// Everything a request reads from the Catalog is a function of the
// replicated state, which only changes when the Catalog's Changed channel
// is closed. A generation is the cache of one such state: host -> deploy
// resolutions, made after the generation's channel was obtained, so that
// any later change closes it. The first request that finds the channel
// closed starts a new generation; requests already holding the old one
// finish with it, each still reading one deploy.
//
// A complete deploy's manifest never changes (only ready, published and
// superseded deploys are ever resolved; a deploy that is deleted no longer
// resolves), so the outcome of a request path in a deploy (a file and its
// hash, a redirect, a miss) is cached per deploy id in a pathTable that a new
// generation takes over from the previous one.
//
// Blobs are content-addressed and immutable: a blob's Info and, for files
// up to maxCachedFile, its bytes are cached by hash, shared by every path
// and deploy. Bytes are checked against the content hash when loaded
// (variants are decompressed first), so memory never holds a corrupt copy.
// A blob that disappears (Open reports it missing) is dropped from the cache.

// generation caches host resolution for one state of the Catalog.
type generation struct {
	changed <-chan struct{} // closed by the Catalog's next change; nil: use once

	hosts readMap[*deployView] // raw Host header -> deploy; nil value: nothing servable

	mu      sync.Mutex             // guards deploys and tables
	deploys map[string]*deployView // deploy id -> view, shared by hosts of one deploy
	tables  map[string]*pathTable  // path tables used in this generation
	prev    map[string]*pathTable  // path tables of the previous generation, read only
	routes  atomic.Int64           // routes held by tables, at most about maxRoutes
	budget  int64                  // maxRoutes, or a test's bound (Handler.routeBudget)
}

func (g *generation) stale() bool {
	if g.changed == nil {
		return true
	}
	select {
	case <-g.changed:
		return true
	default:
		return false
	}
}

// deployView is a resolved deploy as requests of one generation see it.
type deployView struct {
	target
	lastModified []byte // formatted Last-Modified, nil if unknown
	paths        *pathTable
	gen          *generation  // the generation the view belongs to
	rules        *deployRules // nil: the deploy has no rules (rules.go)
	index        *indexSlot   // nil: the deploy never gets an index (index.go)
	stats        *siteStats   // the site's counters (metrics.go); nil without Stats
}

// routeKind is the outcome of a request path in a deploy.
type routeKind uint8

const (
	routeFile     routeKind = iota // serve file (hash)
	routeRedirect                  // 301 to file + "/"
	routeNotFound                  // the deploy's 404
)

// pathRoute is the cached outcome of a request path.
type pathRoute struct {
	kind  routeKind
	file  string // manifest path served, or the directory redirected to
	hash  string
	ctype string
	blob  atomic.Pointer[blobEntry] // set on first serve
	ruled atomic.Pointer[ruledPath] // what the deploy's rules say for the path; rules.go
}

// pathTable caches the routes of one deploy, keyed by raw request path.
type pathTable = readMap[*pathRoute]

func newPathTable() *pathTable { return &pathTable{} }

// readMap is a map for the hot path: once warm, a lookup is a plain map
// read with no lock and no atomic write, so cores serving requests do not
// bounce a lock's cache line between them (three RWMutex read locks per
// request made the parallel benchmark three times slower per request than
// the serial one). It works like sync.Map, typed and with []byte lookups
// that do not allocate: an immutable read map behind an atomic pointer,
// and a dirty map (a superset of it) under a mutex for new keys, promoted
// to be the read map once it has cost as many misses as it has entries.
type readMap[V any] struct {
	read    atomic.Pointer[map[string]V]
	mu      sync.Mutex
	dirty   map[string]V // nil, or read plus new keys
	misses  int
	refused int // new keys not admitted since the last one admitted while full
}

func (m *readMap[V]) get(key []byte) (V, bool) {
	if r := m.read.Load(); r != nil {
		if v, ok := (*r)[string(key)]; ok {
			return v, true
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.read.Load(); r != nil {
		if v, ok := (*r)[string(key)]; ok {
			return v, true
		}
	}
	v, ok := m.dirty[string(key)]
	if m.dirty != nil {
		m.misses++
		if m.misses >= len(m.dirty) {
			d := m.dirty
			m.read.Store(&d)
			m.dirty, m.misses = nil, 0
		}
	}
	return v, ok
}

// fullAdmit: a full readMap admits one new key in fullAdmit. Keys asked for
// often get in after a few tries; a stream of keys that never repeat (random
// paths of a deploy bigger than the map) costs a copy of the map and an
// eviction on one miss in fullAdmit, not on every miss.
const fullAdmit = 16

// put stores v under key unless the key is there already, and returns the
// value stored (v itself if it was not admitted) and whether the map grew
// by one entry. Beyond limit entries, a random one is evicted first, for
// one new key in fullAdmit.
func (m *readMap[V]) put(key []byte, v V, limit int) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.read.Load()
	if r != nil {
		if old, ok := (*r)[string(key)]; ok {
			return old, false
		}
	}
	if old, ok := m.dirty[string(key)]; ok {
		return old, false
	}
	size := m.sizeLocked()
	if size >= limit {
		if m.refused++; m.refused < fullAdmit {
			return v, false
		}
		m.refused = 0
	}
	if m.dirty == nil {
		if r != nil {
			m.dirty = maps.Clone(*r)
		} else {
			m.dirty = make(map[string]V)
		}
	}
	grew := true
	if len(m.dirty) >= limit {
		for k := range m.dirty { // random eviction: map order
			delete(m.dirty, k)
			grew = false
			break
		}
	}
	m.dirty[string(key)] = v
	return v, grew
}

// size returns the number of entries.
func (m *readMap[V]) size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sizeLocked()
}

func (m *readMap[V]) sizeLocked() int {
	if m.dirty != nil {
		return len(m.dirty)
	}
	if r := m.read.Load(); r != nil {
		return len(*r)
	}
	return 0
}

// remove deletes key if it maps to a value for which same reports true.
func (m *readMap[V]) remove(key string, same func(V) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.read.Load()
	if r != nil {
		if v, ok := (*r)[key]; ok && same(v) {
			if m.dirty == nil {
				m.dirty = maps.Clone(*r)
			}
			delete(m.dirty, key)
			d := m.dirty
			m.read.Store(&d)
			m.dirty, m.misses = nil, 0
			return
		}
	}
	if v, ok := m.dirty[key]; ok && same(v) {
		delete(m.dirty, key)
	}
}

// notFoundKey keys the route of the deploy's 404 page; request paths start
// with "/", so it cannot collide.
var notFoundKey = []byte("\x00404")

// Representation indexes: identity, then codings' order (br, zstd, gzip).
const numReprs = 1 + len(codings)

func reprIndex(coding string) int { return 1 + codingIndex(coding) } // "" -> 0

// blobEntry is what the edge knows of one blob.
type blobEntry struct {
	info blobstore.Info
	// variants: answers depend on Accept-Encoding (the blob has stored
	// variants, or otf is set), so they carry Vary.
	variants bool
	// otf: the blob is compressed per request (onthefly.go) until its
	// variants exist.
	otf   bool
	etag  [numReprs]string
	etagB [numReprs][]byte
	body  [numReprs]atomic.Pointer[[]byte] // memory copies of small representations
	// dropped is set by blobCache.drop: routes holding the entry ask
	// Blobs again instead of serving from it (blobFor).
	dropped atomic.Bool
}

func newBlobEntry(info blobstore.Info) *blobEntry {
	otf := onTheFlyEligible(info)
	be := &blobEntry{info: info, variants: otf || hasVariants(info), otf: otf}
	be.etag[0] = makeETag(info.Hash, "")
	for i, c := range codings {
		be.etag[i+1] = makeETag(info.Hash, c)
	}
	for i, s := range be.etag {
		be.etagB[i] = []byte(s)
	}
	return be
}

// blobCache shares blob entries between paths and deploys and holds the
// memory budget of their bodies.
type blobCache struct {
	mu      sync.RWMutex
	m       map[string]*blobEntry
	budget  int64
	used    int64
	loaded  []loadedBody // FIFO of bodies in memory, oldest first
	loadedH int          // index of the oldest in loaded
}

type loadedBody struct {
	be   *blobEntry
	repr int
	size int64
}

func (c *blobCache) get(hash string) *blobEntry {
	c.mu.RLock()
	be := c.m[hash]
	c.mu.RUnlock()
	return be
}

func (c *blobCache) put(be *blobEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxBlobs {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[be.info.Hash] = be
}

// drop forgets a blob whose files went away, and the bytes held for it.
func (c *blobCache) drop(be *blobEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[be.info.Hash] == be {
		delete(c.m, be.info.Hash)
	}
	be.dropped.Store(true)
	for i := range be.body {
		be.body[i].Store(nil) // the bytes are freed when their FIFO slot is
	}
}

// keep stores b as the memory copy of representation repr of be, evicting
// the oldest copies to stay within budget. It returns the copy to serve
// (another request's if it was first).
func (c *blobCache) keep(be *blobEntry, repr int, b []byte) []byte {
	size := int64(len(b))
	c.mu.Lock()
	defer c.mu.Unlock()
	if have := be.body[repr].Load(); have != nil {
		return *have
	}
	if size > c.budget {
		return b
	}
	for c.used+size > c.budget && c.loadedH < len(c.loaded) {
		old := c.loaded[c.loadedH]
		c.loaded[c.loadedH] = loadedBody{}
		c.loadedH++
		old.be.body[old.repr].Store(nil)
		c.used -= old.size
	}
	if c.loadedH > len(c.loaded)/2 && c.loadedH > 64 {
		n := copy(c.loaded, c.loaded[c.loadedH:])
		clear(c.loaded[n:])
		c.loaded, c.loadedH = c.loaded[:n], 0
	}
	c.loaded = append(c.loaded, loadedBody{be: be, repr: repr, size: size})
	c.used += size
	be.body[repr].Store(&b)
	return b
}

// generation returns the cache of the Catalog's current state, starting a
// new one when the state changed.
func (h *Handler) generation() *generation {
	if h.notify == nil {
		return &generation{deploys: map[string]*deployView{}, tables: map[string]*pathTable{}, budget: h.routeBudget}
	}
	if g := h.gen.Load(); g != nil && !g.stale() {
		return g
	}
	h.genMu.Lock()
	defer h.genMu.Unlock()
	old := h.gen.Load()
	if old != nil && !old.stale() {
		return old
	}
	g := &generation{
		changed: h.notify.Changed(), // before any read of the new state
		deploys: map[string]*deployView{},
		tables:  map[string]*pathTable{},
		budget:  h.routeBudget,
	}
	if old != nil {
		old.mu.Lock()
		g.prev = maps.Clone(old.tables) // old may still be written to
		old.mu.Unlock()
	}
	h.gen.Store(g)
	h.indexes.changed()
	return g
}

// deployFor resolves a request's Host header in generation g. A nil view
// with a nil error means the host serves nothing.
func (h *Handler) deployFor(g *generation, host []byte) (*deployView, error) {
	if dv, ok := g.hosts.get(host); ok {
		return dv, nil
	}
	t, found, err := h.resolve(host)
	if err != nil {
		return nil, err
	}
	var dv *deployView
	if found {
		var rules *deployRules
		if t.rules != "" {
			if rules, err = h.rulesFor(t); err != nil {
				return nil, err
			}
		}
		g.mu.Lock()
		dv = g.deploys[t.id]
		if dv == nil || !dv.modified.Equal(t.modified) || dv.https != t.https || dv.target.rules != t.rules {
			dv = g.newView(h, t, rules)
		}
		g.mu.Unlock()
	}
	dv, _ = g.hosts.put(host, dv, maxHosts)
	return dv, nil
}

// newView makes the view of deploy t in generation g, with the deploy's
// path table: the one of this generation or the previous one, or a new
// one. Past maxHosts views the generation keeps no more of them: the view
// then lives as long as the host entries that hold it. g.mu is held.
func (g *generation) newView(h *Handler, t target, rules *deployRules) *deployView {
	paths := g.tables[t.id]
	if paths == nil {
		if paths = g.prev[t.id]; paths != nil { // a read-only map: no lock needed
			g.routes.Add(int64(paths.size()))
		}
	}
	if paths == nil {
		paths = newPathTable()
	}
	dv := &deployView{target: t, paths: paths, gen: g, rules: rules, index: h.indexes.slotFor(t)}
	if h.stats != nil {
		dv.stats = h.stats.site(t.site)
	}
	if !t.modified.IsZero() {
		dv.lastModified = fasthttp.AppendHTTPDate(nil, t.modified)
	}
	if _, ok := g.deploys[t.id]; ok || len(g.deploys) < maxHosts {
		g.tables[t.id] = paths
		g.deploys[t.id] = dv
	}
	return dv
}

// keepRoute caches route r of request path key in the deploy's path table,
// unless the generation's tables hold their budget of routes already, and
// returns the route to serve (another request's, if it was first).
func (dv *deployView) keepRoute(key []byte, r *pathRoute) *pathRoute {
	if dv.gen.routes.Load() >= dv.gen.budget {
		if old, ok := dv.paths.get(key); ok {
			return old
		}
		return r
	}
	r, grew := dv.paths.put(key, r, maxPaths)
	if grew {
		dv.gen.routes.Add(1)
	}
	return r
}

// routeFor returns the outcome of request path raw in deploy dv. On error
// it also returns the manifest path whose lookup failed.
func (h *Handler) routeFor(dv *deployView, raw []byte) (*pathRoute, string, error) {
	if dv.index != nil {
		if ix := dv.index.ix.Load(); ix != nil {
			return ix.route(raw), "", nil
		}
	}
	if r, ok := dv.paths.get(raw); ok {
		return r, "", nil
	}
	r, failed, err := h.findRoute(dv.target, raw)
	if err != nil {
		return nil, failed, err
	}
	return dv.keepRoute(raw, r), "", nil
}

// findRoute applies the path rules of the package documentation to a
// request path, reading the manifest.
func (h *Handler) findRoute(t target, raw []byte) (*pathRoute, string, error) {
	p, ok := requestPath(raw)
	if !ok {
		return &pathRoute{kind: routeNotFound}, "", nil
	}
	if p[len(p)-1] == '/' {
		return h.fileOrNotFound(t, p+indexFile)
	}
	switch hash, found, err := h.lookup(t, p); {
	case err != nil:
		return nil, p, err
	case found:
		return fileRoute(p, hash), "", nil
	}
	switch _, found, err := h.lookup(t, p+"/"+indexFile); {
	case err != nil:
		return nil, p + "/" + indexFile, err
	case found:
		return &pathRoute{kind: routeRedirect, file: p}, "", nil
	}
	return h.fileOrNotFound(t, p+".html")
}

func (h *Handler) fileOrNotFound(t target, file string) (*pathRoute, string, error) {
	hash, found, err := h.lookup(t, file)
	switch {
	case err != nil:
		return nil, file, err
	case found:
		return fileRoute(file, hash), "", nil
	}
	return &pathRoute{kind: routeNotFound}, "", nil
}

func fileRoute(file, hash string) *pathRoute {
	return &pathRoute{kind: routeFile, file: file, hash: hash, ctype: contentType(file)}
}

// blobFor returns what is known of the blob a route serves, asking Blobs
// (which, on an edge, may fetch it) the first time.
func (h *Handler) blobFor(ctx context.Context, r *pathRoute) (*blobEntry, error) {
	if be := r.blob.Load(); be != nil && !be.dropped.Load() {
		return be, nil
	}
	if h.notify != nil {
		if be := h.blobCache.get(r.hash); be != nil {
			r.blob.Store(be)
			return be, nil
		}
	}
	info, err := h.blobs.Stat(ctx, r.hash)
	if err != nil {
		return nil, err
	}
	be := newBlobEntry(info)
	if h.notify != nil {
		h.blobCache.put(be)
		r.blob.Store(be)
	}
	return be, nil
}

// forget drops a blob entry that no longer matches the disk.
func (h *Handler) forget(r *pathRoute, be *blobEntry) {
	r.blob.CompareAndSwap(be, nil)
	if h.notify != nil {
		h.blobCache.drop(be)
	}
}

// errCorrupt reports stored bytes that do not match their content hash.
var errCorrupt = errors.New("stored bytes do not match the content hash")

// cachedBody returns the bytes of representation coding of a small blob
// from memory, loading, checking and keeping them on first use. ok is
// false when bodies are not cached (the caller streams the file instead).
func (h *Handler) cachedBody(ctx context.Context, be *blobEntry, coding string, size int64) (body []byte, ok bool, err error) {
	if h.notify == nil || h.cacheBytes <= 0 || size > maxCachedFile {
		return nil, false, nil
	}
	repr := reprIndex(coding)
	if b := be.body[repr].Load(); b != nil {
		return *b, true, nil
	}
	b := h.fetchedBytes(be.info.Hash, coding, size) // fetched.go
	if b == nil {
		f, n, err := h.blobs.Open(ctx, be.info.Hash, coding)
		if err != nil {
			return nil, true, err
		}
		defer f.Close()
		if n != size {
			return nil, true, fmt.Errorf("size %d, stat said %d", n, size)
		}
		b = make([]byte, n)
		if _, err := io.ReadFull(f, b); err != nil {
			return nil, true, err
		}
	}
	if err := checkContent(be.info, coding, b); err != nil {
		return nil, true, err
	}
	return h.blobCache.keep(be, repr, b), true, nil
}

// zstdDecoder decodes variants being checked; DecodeAll is safe for
// concurrent use.
var zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxCachedFile<<8))
	if err != nil {
		panic(err) // only bad options fail, and these are constant
	}
	return d
})

// checkContent reports errCorrupt unless b, decoded from coding, hashes to
// the blob's name.
func checkContent(info blobstore.Info, coding string, b []byte) error {
	plain := b
	if coding != "" {
		var r io.Reader
		switch coding {
		case "br":
			r = brotli.NewReader(bytes.NewReader(b))
		case "gzip":
			gr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return fmt.Errorf("%w: %v", errCorrupt, err)
			}
			r = gr
		case "zstd":
			out, err := zstdDecoder().DecodeAll(b, make([]byte, 0, info.Size))
			if err != nil {
				return fmt.Errorf("%w: %v", errCorrupt, err)
			}
			r = bytes.NewReader(out)
		default:
			return fmt.Errorf("%w: unknown coding %q", errCorrupt, coding)
		}
		out := make([]byte, 0, info.Size)
		buf := bytes.NewBuffer(out)
		if _, err := io.Copy(buf, io.LimitReader(r, info.Size+1)); err != nil {
			return fmt.Errorf("%w: %v", errCorrupt, err)
		}
		plain = buf.Bytes()
	}
	sum := sha256.Sum256(plain)
	if int64(len(plain)) != info.Size || hex.EncodeToString(sum[:]) != info.Hash {
		return errCorrupt
	}
	return nil
}
