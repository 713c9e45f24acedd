package serve

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/raft"
)

// indexManifest returns the paths of a deploy that exercises every rule of
// findRoute (directory indexes, redirects, clean URLs, case, names that
// differ by a suffix), plus n generated entries.
func indexManifest(n int) []string {
	paths := []string{
		"/index.html", "/404.html", "/about.html", "/docs/index.html", "/docs/intro",
		"/Docs/Case.html", "/a b/ü.txt", "/dir/sub/index.html", "/both", "/both/index.html",
		"/both.html", "/dirhtml/index.html", "/dirhtml.html", "/plain.html", "/x", "/x.html.html",
		"/deep/a/b/c.css", "/_redirects", "/index.html.bak", "/.well-known/security.txt",
	}
	for i := range n {
		paths = append(paths, fmt.Sprintf("/p/%04d/%03d.html", i/1000, i%1000))
	}
	slices.Sort(paths)
	return paths
}

// indexRequests returns request paths to ask a deploy with manifest paths:
// each path as is and in the forms findRoute rewrites, absent and unclean
// ones, and sample random ones.
func indexRequests(paths []string, rng *rand.Rand, sample int) []string {
	reqs := []string{
		"/", "", "x", "//", "/.", "/..", "/../index.html", "/docs", "/docs/", "/docs//", "/docs/./intro",
		"/docs/../about", "/about", "/about/", "/ABOUT", "/Docs/Case", "/docs/case", "/dir", "/dir/",
		"/dir/sub", "/dir/sub/", "/both", "/both/", "/dirhtml", "/dirhtml/", "/plain", "/plain/", "/x.html",
		"/nope", "/nope/", "/p/", "/p/0000", "/p/0000/", "/p/0000/000", "/p/0000/000.htm", "/a b/ü.txt",
		"/a%20b/ü.txt", "/index", "/index.html/", "/404", "/" + strings.Repeat("a", maxRequestPath),
		"/" + strings.Repeat("a", maxRequestPath-1), "/_redirects", "/.well-known/security.txt",
		"/p/0000/000.html?x=1", "/\x00", "/deep/a/b/", "/deep/a/b/c.css/",
	}
	for range sample {
		p := paths[rng.IntN(len(paths))]
		reqs = append(reqs, p, p+"/", strings.TrimSuffix(p, ".html"), strings.ToUpper(p), p+"x", path0(p))
	}
	return reqs
}

// path0 is p with its last byte removed.
func path0(p string) string { return p[:len(p)-1] }

// indexEdge is a realEdge with a large deploy "big" of site "big".
type indexEdge struct {
	*realEdge
	paths []string
	hash  map[string]string // path -> content hash
}

func newIndexEdge(t *testing.T, n int, cfg Config) *indexEdge {
	t.Helper()
	e := newRealEdge(t)
	var hashes []string
	for _, name := range []string{"/1k.bin", "/16k.bin", "/page.html", "/index.html"} {
		h, err := e.fsm.File("dep1", name)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	ie := &indexEdge{realEdge: e, paths: indexManifest(n), hash: map[string]string{}}
	files := make([]atoll.File, len(ie.paths))
	for i, p := range ie.paths {
		files[i] = atoll.File{Path: p, Hash: hashes[i%len(hashes)]}
		ie.hash[p] = files[i].Hash
	}
	at := time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)
	e.apply(t, raft.CreateSite{Name: "big", Created: at})
	ie.addDeploy(t, "big1", files)
	e.apply(t, raft.Publish{Deploy: "big1", At: at})
	cfg.Domain = testDomain
	h, err := New(cfg, e.fsm, storeBlobs{e.blobs})
	if err != nil {
		t.Fatal(err)
	}
	if h.indexes != nil {
		h.indexes.min = 10
	}
	e.h = h
	return ie
}

func (ie *indexEdge) addDeploy(t *testing.T, id string, files []atoll.File) {
	t.Helper()
	at := time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)
	ie.apply(t, raft.CreateDeploy{ID: id, Site: "big", Files: len(files), Created: at})
	for _, c := range raft.BatchFiles(id, files) {
		ie.apply(t, c)
	}
	ie.apply(t, raft.MarkReady{Deploy: id})
}

// get serves one GET and returns the answer's status, Location, ETag and
// body.
func get(h *Handler, host, path string) string {
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	req.SetRequestURI(path)
	req.SetHost(host)
	ctx.Init(&req, nil, nil)
	h.ServeHTTP(&ctx)
	r := &ctx.Response
	sum := fmt.Sprintf("%d loc=%q etag=%q type=%q len=%d", r.StatusCode(), r.Header.Peek("Location"),
		r.Header.Peek("ETag"), r.Header.ContentType(), len(r.Body()))
	if ctx.Response.IsBodyStream() {
		ctx.Response.Reset() // closes the file
	}
	return sum
}

// TestIndexMatchesCatalog compares the index's routes with findRoute's,
// which reads the Catalog (bbolt), for every kind of request path, on a
// deploy whose index spans several arena blocks.
func TestIndexMatchesCatalog(t *testing.T) {
	ie := newIndexEdge(t, 60_000, Config{})
	ix, err := buildIndex(ie.fsm, "big1", len(ie.paths))
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.arena) < 3 {
		t.Fatalf("index of %d arena blocks, want several", len(ix.arena))
	}
	if got, want := ix.count, len(ie.paths); got != want {
		t.Fatalf("index of %d entries, want %d", got, want)
	}
	d, err := ie.fsm.Deploy("big1")
	if err != nil {
		t.Fatal(err)
	}
	tg := targetOf(d)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, raw := range indexRequests(ie.paths, rng, 2000) {
		want, _, err := ie.h.findRoute(tg, []byte(raw))
		if err != nil {
			t.Fatalf("findRoute(%q): %v", raw, err)
		}
		for range 2 { // the second time, from the route cache
			got := ix.route([]byte(raw))
			if got.kind != want.kind || got.file != want.file || got.hash != want.hash || got.ctype != want.ctype {
				t.Fatalf("route(%q) = {%d %q %s %q}, Catalog says {%d %q %s %q}", raw,
					got.kind, got.file, got.hash, got.ctype, want.kind, want.file, want.hash, want.ctype)
			}
		}
	}
}

// TestIndexServes serves a large deploy through the Handler with and
// without its index, and checks that the index is built once the deploy is
// requested, answers the same, and is dropped once the deploy is no longer
// live.
func TestIndexServes(t *testing.T) {
	stats := NewStats(false)
	ie := newIndexEdge(t, 500, Config{Stats: stats})
	plain := newIndexEdge(t, 500, Config{IndexBytes: -1})
	host := "big." + testDomain
	slot := func() *indexSlot {
		ie.h.indexes.mu.Lock()
		defer ie.h.indexes.mu.Unlock()
		return ie.h.indexes.slots["big1"]
	}
	get(ie.h, host, "/")
	ie.h.indexes.wait()
	if sl := slot(); sl == nil || sl.ix.Load() == nil {
		t.Fatal("no index after the deploy was served")
	}
	if n, b := stats.index.deploys.Load(), stats.index.bytes.Load(); n != 1 || b <= 0 {
		t.Fatalf("stats: %d indexes of %d bytes, want 1 of > 0", n, b)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, p := range indexRequests(ie.paths, rng, 200) {
		if p == "" || p[0] != '/' || strings.ContainsRune(p, 0) {
			continue // not a request line fasthttp would pass
		}
		if got, want := get(ie.h, host, p), get(plain.h, host, p); got != want {
			t.Fatalf("GET %s: %s with the index, %s without", p, got, want)
		}
	}

	// A publish of another deploy: the index goes at the next request.
	ie.addDeploy(t, "small", []atoll.File{{Path: "/index.html", Hash: ie.hash["/index.html"]}})
	ie.apply(t, raft.Publish{Deploy: "small", At: time.Date(2025, 1, 3, 0, 0, 0, 0, time.UTC)})
	get(ie.h, host, "/")
	ie.h.indexes.wait()
	if sl := slot(); sl == nil || sl.ix.Load() != nil {
		t.Fatal("index kept after another deploy was published")
	}
	if n, b := stats.index.deploys.Load(), stats.index.bytes.Load(); n != 0 || b != 0 {
		t.Fatalf("stats: %d indexes of %d bytes, want none", n, b)
	}
	// The superseded deploy, still previewable, reads the Catalog.
	preview := "big1--big." + testDomain
	if got, want := get(ie.h, preview, "/p/0000/001.html"), get(plain.h, host, "/p/0000/001.html"); got != want {
		t.Fatalf("preview: %s, want %s", got, want)
	}
}

// TestIndexNoAlloc checks that the index answers a path it has served
// before, and a miss, without allocating.
func TestIndexNoAlloc(t *testing.T) {
	ie := newIndexEdge(t, 2000, Config{})
	ix, err := buildIndex(ie.fsm, "big1", len(ie.paths))
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"/p/0001/234.html", "/docs/", "/about", "/nope", "/p/0001/234"} {
		b := []byte(raw)
		ix.route(b)
		if n := testing.AllocsPerRun(100, func() { ix.route(b) }); n != 0 {
			t.Errorf("route(%q): %.0f allocations, want 0", raw, n)
		}
	}
	// A path served for the first time costs its route, in one allocation
	// (random paths over a large deploy make one per request).
	next := len(ie.paths) - 200 // none of them asked above
	first := func() {
		r := ix.route([]byte(ie.paths[next]))
		next++
		if r.kind != routeFile || r.file != ie.paths[next-1] || r.hash != ie.hash[r.file] {
			t.Fatalf("route(%q) = %+v, want the file with hash %s", ie.paths[next-1], r, ie.hash[ie.paths[next-1]])
		}
	}
	if n := testing.AllocsPerRun(100, first); n != 1 {
		t.Errorf("route of a path not served before: %.0f allocations, want 1", n)
	}
}

// TestPlanIndexes checks which live deploys get an index within a budget.
func TestPlanIndexes(t *testing.T) {
	big, mid, small := indexBytesFor(3_000_000), indexBytesFor(1_000_000), indexBytesFor(100_000)
	tests := []struct {
		name   string
		budget int64
		slots  []*indexSlot
		want   []string
	}{
		{"all fit", big + mid + small, []*indexSlot{
			{id: "a", entries: 3_000_000, live: true}, {id: "b", entries: 1_000_000, live: true}, {id: "c", entries: 100_000, live: true},
		}, []string{"a", "b", "c"}},
		{"most entries first, smaller ones fill the rest", big + small, []*indexSlot{
			{id: "a", entries: 3_000_000, live: true}, {id: "b", entries: 1_000_000, live: true}, {id: "c", entries: 100_000, live: true},
		}, []string{"a", "c"}},
		{"not live: none", big, []*indexSlot{
			{id: "a", entries: 3_000_000}, {id: "b", entries: 1_000_000, failed: true, live: true},
		}, nil},
		{"a built index counts its real size", mid, []*indexSlot{
			{id: "a", entries: 1_000_000, live: true, bytes: mid + 1}, {id: "c", entries: 100_000, live: true},
		}, []string{"c"}},
		{"too big for the budget", small - 1, []*indexSlot{{id: "c", entries: 100_000, live: true}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keep := planIndexes(tt.slots, tt.budget)
			var got []string
			for _, sl := range tt.slots {
				if keep[sl] {
					got = append(got, sl.id)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestIndexBudget serves two large live deploys with room for one index:
// the one with more entries gets it, and the other once the first is gone.
func TestIndexBudget(t *testing.T) {
	ie := newIndexEdge(t, 900, Config{})
	at := time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)
	ie.apply(t, raft.CreateSite{Name: "other", Created: at})
	var files []atoll.File
	for i := range 300 {
		files = append(files, atoll.File{Path: fmt.Sprintf("/o/%03d.html", i), Hash: ie.hash["/index.html"]})
	}
	ie.apply(t, raft.CreateDeploy{ID: "other1", Site: "other", Files: len(files), Created: at})
	for _, c := range raft.BatchFiles("other1", files) {
		ie.apply(t, c)
	}
	ie.apply(t, raft.MarkReady{Deploy: "other1"}, raft.Publish{Deploy: "other1", At: at})
	set := ie.h.indexes
	set.budget = indexBytesFor(len(ie.paths)) + 1
	indexed := func(id string) bool {
		set.mu.Lock()
		defer set.mu.Unlock()
		sl := set.slots[id]
		return sl != nil && sl.ix.Load() != nil
	}
	get(ie.h, "other."+testDomain, "/o/001.html")
	set.wait()
	if !indexed("other1") {
		t.Fatal("other1 not indexed while alone")
	}
	get(ie.h, "big."+testDomain, "/")
	set.wait()
	if !indexed("big1") || indexed("other1") {
		t.Fatalf("indexed: big1 %v, other1 %v; want only big1, the larger", indexed("big1"), indexed("other1"))
	}
	ie.apply(t, raft.DeleteSite{Name: "big"})
	get(ie.h, "other."+testDomain, "/o/001.html")
	set.wait()
	if indexed("big1") || !indexed("other1") {
		t.Fatalf("after big's deletion, indexed: big1 %v, other1 %v; want only other1", indexed("big1"), indexed("other1"))
	}
	if got := get(ie.h, "other."+testDomain, "/o/002.html"); !strings.HasPrefix(got, "200 ") {
		t.Fatalf("GET /o/002.html: %s", got)
	}
}

var _ ManifestScanner = (*raft.FSM)(nil)

// TestReadMapAdmission checks that a full readMap admits one new key in
// fullAdmit (keys asked for again get in), and stays within its limit.
func TestReadMapAdmission(t *testing.T) {
	const limit = 64
	var m readMap[int]
	for i := range limit {
		m.put(fmt.Appendf(nil, "k%d", i), i, limit)
	}
	admitted := 0
	for i := range 10 * fullAdmit {
		key := fmt.Appendf(nil, "new%d", i)
		if got, _ := m.put(key, -i, limit); got != -i {
			t.Fatalf("put returned %d, want the value given", got)
		}
		if _, ok := m.get(key); ok {
			admitted++
		}
	}
	if admitted != 10 {
		t.Errorf("%d new keys admitted into a full map, want 10 (one in %d)", admitted, fullAdmit)
	}
	hot := []byte("hot")
	for range fullAdmit {
		m.put(hot, 1, limit)
	}
	if _, ok := m.get(hot); !ok {
		t.Error("a key put fullAdmit times is not in the map")
	}
	m.mu.Lock()
	n := len(m.dirty)
	if m.dirty == nil {
		n = len(*m.read.Load())
	}
	m.mu.Unlock()
	if n > limit {
		t.Errorf("%d keys, limit %d", n, limit)
	}
}

// BenchmarkIndexRoute compares the route of a random path of a
// 200,000-entry deploy from its index with findRoute's, which reads the
// Catalog (bbolt): the lookup alone, without the rest of the request.
//
//	go test -run '^$' -bench IndexRoute -benchmem ./serve/
func BenchmarkIndexRoute(b *testing.B) {
	e := newRealEdge(b)
	hash, err := e.fsm.File("dep1", "/1k.bin")
	if err != nil {
		b.Fatal(err)
	}
	n := 200_000
	paths := indexManifest(n)
	files := make([]atoll.File, len(paths))
	raws := make([][]byte, len(paths))
	for i, p := range paths {
		files[i], raws[i] = atoll.File{Path: p, Hash: hash}, []byte(p)
	}
	e.apply(b, raft.CreateDeploy{ID: "big1", Site: "bench", Files: len(files)})
	for _, c := range raft.BatchFiles("big1", files) {
		e.apply(b, c)
	}
	e.apply(b, raft.MarkReady{Deploy: "big1"})
	ix, err := buildIndex(e.fsm, "big1", len(files))
	if err != nil {
		b.Fatal(err)
	}
	d, err := e.fsm.Deploy("big1")
	if err != nil {
		b.Fatal(err)
	}
	tg := targetOf(d)
	b.Run("index", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		b.ReportAllocs()
		for b.Loop() {
			if r := ix.route(raws[rng.IntN(len(raws))]); r.kind != routeFile {
				b.Fatal("not found")
			}
		}
	})
	b.Run("catalog", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		b.ReportAllocs()
		for b.Loop() {
			if r, _, err := e.h.findRoute(tg, raws[rng.IntN(len(raws))]); err != nil || r.kind != routeFile {
				b.Fatal("not found", err)
			}
		}
	})
}
