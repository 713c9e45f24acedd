package serve

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll"
)

// notifyingCatalog is the fake catalog with Changed, as *raft.Store has it:
// the Handler over it caches. Every change made through it closes the
// channel; changes made to the fake directly are invisible to the cache,
// as a change of raft's state without notification would be.
type notifyingCatalog struct {
	*fakeCatalog
	mu sync.Mutex
	ch chan struct{}
}

var _ ChangeNotifier = (*notifyingCatalog)(nil)

func (c *notifyingCatalog) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

func (c *notifyingCatalog) notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}

func (c *notifyingCatalog) publish(id string, at time.Time) {
	c.fakeCatalog.publish(id, at)
	c.notify()
}

// cachedFixture is the test fixture served a second time, on another
// listener, by a Handler that caches.
type cachedFixture struct {
	*fixture
	cat  *notifyingCatalog
	h    *Handler
	addr string
}

func newCachedFixture(t *testing.T, cfg Config) *cachedFixture {
	t.Helper()
	fx := newFixture(t)
	cat := &notifyingCatalog{fakeCatalog: fx.cat}
	cfg.Domain = testDomain
	cfg.Logger = slog.New(slog.NewJSONHandler(fx.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := New(cfg, cat, fx.blobs)
	if err != nil {
		t.Fatal(err)
	}
	if h.notify == nil {
		t.Fatal("handler over a ChangeNotifier does not cache")
	}
	return &cachedFixture{fixture: fx, cat: cat, h: h, addr: startServer(t, h)}
}

// doCached is fixture.do against the caching Handler.
func (cf *cachedFixture) doCached(t *testing.T, r request) response {
	t.Helper()
	other := *cf.fixture
	other.addr = cf.addr
	return other.do(t, r)
}

// TestCachedHandlerAgrees replays a corpus of requests against the Handler
// without cache and the one with, twice (cold, then warm), and wants the
// same answers, byte for byte and header for header.
func TestCachedHandlerAgrees(t *testing.T) {
	cf := newCachedFixture(t, Config{})
	hosts := []string{"blog.atoll.test", "BLOG.atoll.test:8080", "d1--blog.atoll.test", "d3--blog.atoll.test",
		"d4--blog.atoll.test", "blog.example.com", "other.example.net", "empty.atoll.test", "nope.atoll.test", "[::1]"}
	targets := []string{"/", "/about", "/about.html", "/docs", "/docs/", "/docs?x=1", "/files", "/files/",
		"/a%20b/%C3%BC.txt", "/100%25.txt", "/empty.txt", "/big.bin", "/nope", "/404.html", "/style.css",
		"/UPPER.PNG", "/./docs/../about", "//about", "/index.html/"}
	headers := [][]string{
		nil,
		{"Accept-Encoding: gzip, deflate, br, zstd"},
		{"Accept-Encoding: gzip;q=0.5, zstd"},
		{"Accept-Encoding: br;q=0, identity;q=1"},
		{"If-None-Match: " + etagOf(cf.hash["index"], "br"), "Accept-Encoding: br"},
		{"If-None-Match: " + etagOf(cf.hash["big"], "")},
		{"If-Modified-Since: " + httpDate(d2.PublishedAt)},
		{"If-Match: \"nope\""},
		{"Range: bytes=10-19"},
		{"Range: bytes=-5", "Accept-Encoding: br"},
		{"Range: bytes=100000000-"},
		{"Range: bytes=0-0", "If-Range: " + etagOf(cf.hash["index"], "")},
	}
	methods := []string{"GET", "HEAD"}
	for pass := range 2 {
		for _, host := range hosts {
			for _, target := range targets {
				for _, hdr := range headers {
					for _, m := range methods {
						r := request{method: m, host: host, target: target, header: hdr}
						want := cf.do(t, r)
						got := cf.doCached(t, r)
						if d := diffResponses(got, want); d != "" {
							t.Fatalf("pass %d, %s %s %s %q: cached handler differs: %s", pass, m, host, target, hdr, d)
						}
					}
				}
			}
		}
	}
	if got := cf.logs.records(t); len(got) != 0 {
		t.Errorf("normal requests logged %d records, want none: %v", len(got), got)
	}
}

func diffResponses(got, want response) string {
	if got.status != want.status {
		return "status " + http.StatusText(got.status) + ", want " + http.StatusText(want.status)
	}
	if string(got.body) != string(want.body) {
		return "body differs: got " + string(truncateBytes(got.body)) + ", want " + string(truncateBytes(want.body))
	}
	for _, h := range []http.Header{got.header, want.header} {
		for k := range h {
			if k == "Date" {
				continue
			}
			if g, w := got.header.Values(k), want.header.Values(k); !slices.Equal(g, w) {
				return "header " + k + ": got " + join(g) + ", want " + join(w)
			}
		}
	}
	return ""
}

func truncateBytes(b []byte) []byte {
	if len(b) > 60 {
		return b[:60]
	}
	return b
}

func join(v []string) string {
	out := "["
	for i, s := range v {
		if i > 0 {
			out += " "
		}
		out += "\"" + s + "\""
	}
	return out + "]"
}

// TestCacheFollowsPublish: a publish or a rollback through the Catalog is
// visible to the next request, with its new Last-Modified, and previews of
// the other deploys keep working.
func TestCacheFollowsPublish(t *testing.T) {
	cf := newCachedFixture(t, Config{})
	get := func(target string) response {
		return cf.doCached(t, request{target: target, header: []string{"Accept-Encoding: identity"}})
	}
	if got, want := string(get("/").body), string(indexV2); got != want {
		t.Fatalf("before publish: got %.30q, want %.30q", got, want)
	}
	cf.cat.publish("d6", t0.Add(100*time.Hour))
	if got, want := string(get("/").body), "blog v6\n"; got != want {
		t.Errorf("after publish: got %q, want %q", got, want)
	}
	if got, want := get("/about").status, 404; got != want {
		t.Errorf("after publish, /about: got %d, want %d (d6 has no about)", got, want)
	}
	rollbackAt := t0.Add(200 * time.Hour)
	cf.cat.publish("d2", rollbackAt)
	resp := get("/")
	if got, want := string(resp.body), string(indexV2); got != want {
		t.Errorf("after rollback: got %.30q, want %.30q", got, want)
	}
	if got, want := resp.get("Last-Modified"), httpDate(rollbackAt); got != want {
		t.Errorf("after rollback, Last-Modified: got %q, want %q", got, want)
	}
	if got, want := string(cf.doCached(t, request{host: "d6--blog.atoll.test"}).body), "blog v6\n"; got != want {
		t.Errorf("preview of d6: got %q, want %q", got, want)
	}
}

// TestCacheAtomicPublish is TestAtomicPublish with the cache: a publish
// that lands mid-request does not mix deploys, and the next request sees it.
func TestCacheAtomicPublish(t *testing.T) {
	cf := newCachedFixture(t, Config{})
	fired := false
	cf.cat.fakeCatalog.mu.Lock()
	cf.cat.afterSite = func(string) {
		if !fired {
			fired = true
			cf.cat.publish("d6", d6.Created.Add(time.Minute))
		}
	}
	cf.cat.fakeCatalog.mu.Unlock()
	resp := cf.doCached(t, request{target: "/about", header: []string{"Accept-Encoding: identity"}})
	if got, want := string(resp.body), "about v2\n"; got != want {
		t.Errorf("mid-publish request: got %q, want %q (all from d2)", got, want)
	}
	next := cf.doCached(t, request{target: "/about", header: []string{"Accept-Encoding: identity"}})
	if got, want := string(next.body), "custom 404 v6\n"; got != want {
		t.Errorf("next request: got %q, want %q (d6's 404)", got, want)
	}
}

// TestCacheRefusesCorruptBytes: bytes that do not match the content hash
// are never cached nor served; a corrupt variant gives way to the identity
// bytes.
func TestCacheRefusesCorruptBytes(t *testing.T) {
	cf := newCachedFixture(t, Config{})
	about := filepath.Join(cf.blobs.dir, cf.hash["about"])
	if err := os.WriteFile(about, []byte("about XX\n"), 0o644); err != nil { // same size
		t.Fatal(err)
	}
	if got, want := cf.doCached(t, request{target: "/about"}).status, 503; got != want {
		t.Errorf("corrupt identity bytes: got %d, want %d", got, want)
	}
	if got, want := cf.doCached(t, request{target: "/about", header: []string{"Range: bytes=0-3"}}).status, 503; got != want {
		t.Errorf("range of corrupt identity bytes: got %d, want %d", got, want)
	}
	if err := os.WriteFile(about, []byte("about v2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := string(cf.doCached(t, request{target: "/about"}).body), "about v2\n"; got != want {
		t.Errorf("repaired: got %q, want %q", got, want)
	}

	br := filepath.Join(cf.blobs.dir, cf.hash["index"]+".br")
	b, err := os.ReadFile(br)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(br, b, 0o644); err != nil {
		t.Fatal(err)
	}
	resp := cf.doCached(t, request{header: []string{"Accept-Encoding: br"}})
	if got, want := resp.status, 200; got != want {
		t.Fatalf("corrupt br variant: got %d, want %d", got, want)
	}
	if got := resp.get("Content-Encoding"); got != "" {
		t.Errorf("corrupt br variant: Content-Encoding %q, want identity", got)
	}
	if got, want := string(resp.body), string(indexV2); got != want {
		t.Errorf("corrupt br variant: body %.30q, want %.30q", got, want)
	}
	if got := cf.logs.records(t); len(got) == 0 {
		t.Error("corrupt bytes were not logged")
	}
}

// TestCacheBlobGone: a blob whose file disappears after it was cached is
// answered 503, then served again once it is back.
func TestCacheBlobGone(t *testing.T) {
	cf := newCachedFixture(t, Config{})
	if got, want := cf.doCached(t, request{target: "/big.bin"}).status, 200; got != want {
		t.Fatalf("warm: got %d, want %d", got, want)
	}
	big := filepath.Join(cf.blobs.dir, cf.hash["big"])
	if err := os.Rename(big, big+".away"); err != nil {
		t.Fatal(err)
	}
	if got, want := cf.doCached(t, request{target: "/big.bin"}).status, 503; got != want {
		t.Errorf("gone: got %d, want %d", got, want)
	}
	if err := os.Rename(big+".away", big); err != nil {
		t.Fatal(err)
	}
	resp := cf.doCached(t, request{target: "/big.bin"})
	if got, want := resp.status, 200; got != want {
		t.Errorf("back: got %d, want %d", got, want)
	}
	if got, want := len(resp.body), len(bigBin); got != want {
		t.Errorf("back: %d bytes, want %d", got, want)
	}
	cf.logs.records(t)
}

// TestCacheBudget: bodies stay within Config.CacheBytes, and files that do
// not fit are still served whole.
func TestCacheBudget(t *testing.T) {
	const budget = 3000
	cf := newCachedFixture(t, Config{CacheBytes: budget})
	for range 3 {
		for _, target := range []string{"/", "/about", "/docs/", "/404.html", "/a%20b/%C3%BC.txt", "/nope"} {
			for _, ae := range []string{"identity", "br", "gzip", "zstd"} {
				resp := cf.doCached(t, request{target: target, header: []string{"Accept-Encoding: " + ae}})
				if resp.status >= 500 {
					t.Fatalf("%s %s: status %d", target, ae, resp.status)
				}
				if got := decompress(t, resp.get("Content-Encoding"), resp.body); target == "/" && string(got) != string(indexV2) {
					t.Errorf("%s %s: wrong body", target, ae)
				}
			}
			cf.h.blobCache.mu.Lock()
			used := cf.h.blobCache.used
			cf.h.blobCache.mu.Unlock()
			if used > budget {
				t.Fatalf("cache holds %d bytes, over the budget of %d", used, budget)
			}
		}
	}
}

// TestCacheHoldsPlatformHosts: an edge of a platform with more sites than
// the old bound of 16,384 hosts resolves each host once per state of the
// Catalog, however they are interleaved: a second round over every host
// reads no site.
func TestCacheHoldsPlatformHosts(t *testing.T) {
	const sites = 20_000
	cf := newCachedFixture(t, Config{})
	hash := cf.hash["tiny"]
	for i := range sites {
		name, id := fmt.Sprintf("s%05d", i), fmt.Sprintf("d%05d", i)
		cf.cat.addSite(atoll.Site{Name: name, Created: t0})
		cf.cat.addDeploy(atoll.Deploy{ID: id, Site: name, State: atoll.StateReady, Created: t0, Files: 1}, map[string]string{"/index.html": hash})
		cf.cat.fakeCatalog.publish(id, t0)
	}
	cf.cat.notify()
	var reads atomic.Int64
	cf.cat.afterSite = func(string) { reads.Add(1) }
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	ctx.Init(&req, nil, nil)
	for round := range 2 {
		reads.Store(0)
		for i := range sites {
			ctx.Request.SetRequestURI("/index.html")
			ctx.Request.SetHost(fmt.Sprintf("s%05d.%s", (i*7919)%sites, testDomain))
			cf.h.ServeHTTP(&ctx)
			if got, want := ctx.Response.StatusCode(), 200; got != want {
				t.Fatalf("round %d, site %d: status %d, want %d", round, i, got, want)
			}
			ctx.Response.Reset()
		}
		if got, want := reads.Load(), int64(sites*(1-round)); got != want {
			t.Errorf("round %d: %d sites read, want %d", round, got, want)
		}
	}
}

// TestCacheRouteBudget: past its budget of routes, a generation caches no
// more of them (the memory a visitor can make the edge hold is bounded),
// and the paths it did not cache are still answered, from the Catalog.
func TestCacheRouteBudget(t *testing.T) {
	cf := newCachedFixture(t, Config{})
	cf.h.routeBudget = 3
	targets := []string{"/about", "/docs/guide.html", "/files", "/notes.txt", "/style.css", "/missing"}
	want := map[string]int{}
	for round := range 2 {
		cf.cat.takeLookups()
		for _, target := range targets {
			status := cf.doCached(t, request{target: target}).status
			if round == 0 {
				want[target] = status
			} else if status != want[target] {
				t.Errorf("round 2, %s: status %d, first round %d", target, status, want[target])
			}
		}
		if round == 1 {
			// The first three routes stay cached; the others (and the 404
			// page's route) are read again on every request.
			for _, l := range cf.cat.takeLookups() {
				for _, cached := range []string{"/about.html", "/docs/guide.html", "/files"} {
					if strings.HasSuffix(l, " "+cached) {
						t.Errorf("round 2 read %s again: its route was within the budget", l)
					}
				}
			}
		}
	}
	if got := cf.h.gen.Load().routes.Load(); got > cf.h.routeBudget {
		t.Errorf("%d routes cached, budget %d", got, cf.h.routeBudget)
	}
	if want["/about"] != 200 || want["/missing"] != 404 {
		t.Errorf("statuses %v, want 200 for /about and 404 for /missing", want)
	}
}
