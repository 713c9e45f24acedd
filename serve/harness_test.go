package serve

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/raft"
)

// Interface guards: raft's store is the Catalog node wires in, and the
// fakes stand in for it and for node's Blobs.
var (
	_ Catalog = (*raft.Store)(nil)
	_ Catalog = (*raft.FSM)(nil)
	_ Catalog = (*fakeCatalog)(nil)
	_ Blobs   = (*fakeBlobs)(nil)
)

// fakeCatalog is an in-memory Catalog. Errors can be injected per method,
// and every File lookup is recorded so tests can check which deploy a
// request read.
type fakeCatalog struct {
	mu      sync.Mutex
	sites   map[string]atoll.Site
	domains map[string]string // custom domain -> site
	deploys map[string]atoll.Deploy
	files   map[string]map[string]string // deploy -> path -> hash

	siteErr, domainErr, deployErr, fileErr error
	afterSite                              func(name string) // runs after Site answers, outside the lock
	lookups                                []string          // "deploy path" of each File call
}

func newFakeCatalog() *fakeCatalog {
	return &fakeCatalog{
		sites:   map[string]atoll.Site{},
		domains: map[string]string{},
		deploys: map[string]atoll.Deploy{},
		files:   map[string]map[string]string{},
	}
}

func (c *fakeCatalog) addSite(s atoll.Site) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sites[s.Name] = s
	for _, d := range s.Domains {
		c.domains[d] = s.Name
	}
}

func (c *fakeCatalog) addDeploy(d atoll.Deploy, files map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deploys[d.ID] = d
	c.files[d.ID] = files
}

// publish makes deploy id its site's live deploy, as raft's Publish does.
func (c *fakeCatalog) publish(id string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.deploys[id]
	s := c.sites[d.Site]
	if old, ok := c.deploys[s.Published]; ok {
		old.State = atoll.StateSuperseded
		c.deploys[old.ID] = old
	}
	d.State, d.PublishedAt = atoll.StatePublished, at
	c.deploys[id] = d
	s.Published = id
	c.sites[s.Name] = s
}

func (c *fakeCatalog) Site(name string) (atoll.Site, error) {
	c.mu.Lock()
	s, ok := c.sites[name]
	err, hook := c.siteErr, c.afterSite
	c.mu.Unlock()
	if err != nil {
		return atoll.Site{}, err
	}
	if !ok {
		return atoll.Site{}, fmt.Errorf("site %q: %w", name, atoll.ErrNotFound)
	}
	if hook != nil {
		hook(name)
	}
	return s, nil
}

func (c *fakeCatalog) SiteByDomain(host string) (atoll.Site, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.domainErr != nil {
		return atoll.Site{}, c.domainErr
	}
	name, ok := c.domains[host]
	if !ok {
		return atoll.Site{}, fmt.Errorf("domain %q: %w", host, atoll.ErrNotFound)
	}
	return c.sites[name], nil
}

func (c *fakeCatalog) Deploy(id string) (atoll.Deploy, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deployErr != nil {
		return atoll.Deploy{}, c.deployErr
	}
	d, ok := c.deploys[id]
	if !ok {
		return atoll.Deploy{}, fmt.Errorf("deploy %q: %w", id, atoll.ErrNotFound)
	}
	return d, nil
}

func (c *fakeCatalog) File(deployID, path string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lookups = append(c.lookups, deployID+" "+path)
	if c.fileErr != nil {
		return "", c.fileErr
	}
	h, ok := c.files[deployID][path]
	if !ok {
		return "", fmt.Errorf("file %s %q: %w", deployID, path, atoll.ErrNotFound)
	}
	return h, nil
}

func (c *fakeCatalog) takeLookups() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.lookups
	c.lookups = nil
	return l
}

// fakeBlobs is a Blobs over a directory laid out like blobstore's:
// <dir>/<hash> for the identity bytes and <hash>.br, .zst, .gz variants.
type fakeBlobs struct {
	dir string

	mu      sync.Mutex
	statErr map[string]error
	openErr map[string]error               // hash + "/" + encoding
	ghosts  map[string][]blobstore.Variant // variants Stat reports but Open cannot find
	pending map[string]bool                // blobs Stat reports Pending while they have no variant
}

func newFakeBlobs(t testing.TB) *fakeBlobs {
	t.Helper()
	return &fakeBlobs{
		dir:     t.TempDir(),
		statErr: map[string]error{},
		openErr: map[string]error{},
		ghosts:  map[string][]blobstore.Variant{},
		pending: map[string]bool{},
	}
}

var variantExt = map[string]string{"br": ".br", "zstd": ".zst", "gzip": ".gz"}

// put stores content and the given compressed variants, made with the same
// libraries blobstore uses, and returns the content hash.
func (b *fakeBlobs) put(t testing.TB, content []byte, codings ...string) string {
	t.Helper()
	sum := sha256.Sum256(content)
	hash := hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(b.dir, hash), content, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range codings {
		if err := os.WriteFile(filepath.Join(b.dir, hash+variantExt[c]), compress(t, c, content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return hash
}

// compressed caches compress's results across fixtures: tests build many.
var compressed sync.Map // coding + "\x00" + content -> []byte

func compress(t testing.TB, coding string, content []byte) []byte {
	t.Helper()
	key := coding + "\x00" + string(content)
	if b, ok := compressed.Load(key); ok {
		return b.([]byte)
	}
	var buf bytes.Buffer
	var w io.WriteCloser
	switch coding {
	case "br":
		w = brotli.NewWriterLevel(&buf, brotli.BestCompression)
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "zstd":
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	default:
		t.Fatalf("unknown coding %q", coding)
	}
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	compressed.Store(key, buf.Bytes())
	return buf.Bytes()
}

func decompress(t testing.TB, coding string, body []byte) []byte {
	t.Helper()
	var r io.Reader
	switch coding {
	case "":
		return body
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	case "gzip":
		gr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("gzip body: %v", err)
		}
		r = gr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("zstd body: %v", err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("unexpected Content-Encoding %q", coding)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s body: %v", coding, err)
	}
	return out
}

func (b *fakeBlobs) Stat(_ context.Context, hash string) (blobstore.Info, error) {
	b.mu.Lock()
	err, ghosts, pending := b.statErr[hash], b.ghosts[hash], b.pending[hash]
	b.mu.Unlock()
	if err != nil {
		return blobstore.Info{}, err
	}
	fi, err := os.Stat(filepath.Join(b.dir, hash))
	if errors.Is(err, os.ErrNotExist) {
		return blobstore.Info{}, fmt.Errorf("stat blob %s: %w", hash, blobstore.ErrNotFound)
	}
	if err != nil {
		return blobstore.Info{}, err
	}
	info := blobstore.Info{Hash: hash, Size: fi.Size()}
	for _, c := range []string{"br", "zstd", "gzip"} {
		if vi, err := os.Stat(filepath.Join(b.dir, hash+variantExt[c])); err == nil {
			info.Variants = append(info.Variants, blobstore.Variant{Encoding: c, Size: vi.Size()})
		}
	}
	info.Variants = append(info.Variants, ghosts...)
	info.Pending = pending && len(info.Variants) == 0
	return info, nil
}

func (b *fakeBlobs) Open(_ context.Context, hash, encoding string) (*os.File, int64, error) {
	b.mu.Lock()
	err := b.openErr[hash+"/"+encoding]
	b.mu.Unlock()
	if err != nil {
		return nil, 0, err
	}
	name := filepath.Join(b.dir, hash)
	if encoding != "" {
		name += variantExt[encoding]
	}
	f, err := os.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("open blob %s %q: %w", hash, encoding, blobstore.ErrNotFound)
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// logBuffer collects JSON log lines from the handler.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// records returns the logged records, decoded.
func (l *logBuffer) records(t testing.TB) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range bytes.Lines(l.buf.Bytes()) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	l.buf.Reset()
	return out
}

// The fixture: a platform domain and the sites, deploys and files every
// HTTP test reads.
const testDomain = "atoll.test"

var (
	t0 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

	// Deploys of site "blog": d1 was live and is superseded, d2 is live,
	// d3 is a complete preview, d4 still uploading, d5 failed, d6 ready to
	// be published by the atomic-publish test.
	d1 = atoll.Deploy{ID: "d1", Site: "blog", State: atoll.StateSuperseded, Created: t0, PublishedAt: t0.Add(time.Hour)}
	d2 = atoll.Deploy{ID: "d2", Site: "blog", State: atoll.StatePublished, Created: t0.Add(24 * time.Hour), PublishedAt: t0.Add(25 * time.Hour)}
	d3 = atoll.Deploy{ID: "d3", Site: "blog", State: atoll.StateReady, Created: t0.Add(48 * time.Hour)}
	d4 = atoll.Deploy{ID: "d4", Site: "blog", State: atoll.StateUploading, Created: t0.Add(49 * time.Hour)}
	d5 = atoll.Deploy{ID: "d5", Site: "blog", State: atoll.StateFailed, Created: t0.Add(50 * time.Hour)}
	d6 = atoll.Deploy{ID: "d6", Site: "blog", State: atoll.StateReady, Created: t0.Add(51 * time.Hour)}
	o1 = atoll.Deploy{ID: "o1", Site: "other", State: atoll.StatePublished, Created: t0}
)

// content of the fixture's files.
var (
	indexV2  = []byte("<!doctype html><title>blog v2</title>\n" + strings.Repeat("<p>Atoll serves static sites from many nodes.</p>\n", 60))
	page404  = []byte("<!doctype html><h1>custom 404 v2</h1>\n" + strings.Repeat("<p>nothing here</p>\n", 20))
	bigBin   = pseudoRandom(200 << 10) // larger than fasthttp's small-file threshold: goes out with sendfile
	tinyText = []byte("tiny\n")
)

func pseudoRandom(n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	seed := sha256.Sum256([]byte("atoll"))
	for len(out) < n {
		seed = sha256.Sum256(seed[:])
		out = append(out, seed[:]...)
	}
	return out[:n]
}

// fixture is a running edge over the fake catalog and blob store.
type fixture struct {
	cat   *fakeCatalog
	blobs *fakeBlobs
	logs  *logBuffer
	h     *Handler
	addr  string
	hash  map[string]string // fixture name -> content hash
}

func newFixture(t testing.TB) *fixture {
	return newFixtureConfig(t, Config{Domain: testDomain})
}

func newFixtureConfig(t testing.TB, cfg Config) *fixture {
	t.Helper()
	fx := &fixture{cat: newFakeCatalog(), blobs: newFakeBlobs(t), logs: &logBuffer{}, hash: map[string]string{}}
	b := fx.blobs
	put := func(name string, content []byte, codings ...string) string {
		h := b.put(t, content, codings...)
		fx.hash[name] = h
		return h
	}
	index := put("index", indexV2, "br", "zstd", "gzip")
	notFound := put("404", page404, "gzip")
	tiny := put("tiny", tinyText)
	big := put("big", bigBin)
	files := map[string]string{
		"/index.html":       index,
		"/about.html":       put("about", []byte("about v2\n")),
		"/docs/index.html":  put("docs", []byte("docs index v2\n")),
		"/docs/guide.html":  put("guide", []byte("guide v2\n")),
		"/files":            put("files", []byte("a file named files\n")),
		"/files/index.html": put("filesdir", []byte("files dir index\n")),
		"/a b/ü.txt":        put("unicode", []byte("unicode path\n")),
		"/100%.txt":         put("percent", []byte("one hundred percent\n")),
		"/empty.txt":        put("empty", nil),
		"/big.bin":          big,
		"/404.html":         notFound,
	}
	for _, p := range []string{
		"/style.css", "/app.js", "/mod.mjs", "/data.json", "/logo.svg", "/img/photo.png",
		"/pic.jpg", "/pic.jpeg", "/pic.gif", "/pic.webp", "/pic.avif", "/favicon.ico",
		"/font.woff", "/font.woff2", "/font.ttf", "/notes.txt", "/feed.xml", "/app.wasm",
		"/doc.pdf", "/video.mp4", "/clip.webm", "/app.js.map", "/site.webmanifest",
		"/README", "/UPPER.PNG", "/weird.xyz",
	} {
		files[p] = tiny
	}
	fx.cat.addSite(atoll.Site{Name: "blog", Domains: []string{"blog.example.com", "www.blog.example.com"}, Published: "d2", Created: t0})
	fx.cat.addSite(atoll.Site{Name: "other", Domains: []string{"other.example.net"}, Published: "o1", Created: t0})
	fx.cat.addSite(atoll.Site{Name: "empty", Domains: []string{"empty.example.org"}, Created: t0})
	fx.cat.addDeploy(d1, map[string]string{
		"/index.html": put("indexV1", []byte("blog v1\n")),
		"/about.html": put("aboutV1", []byte("about v1\n")),
		"/404.html":   put("404V1", []byte("custom 404 v1\n")),
	})
	fx.cat.addDeploy(d2, files)
	fx.cat.addDeploy(d3, map[string]string{"/index.html": put("indexV3", []byte("blog v3\n"))})
	fx.cat.addDeploy(d4, map[string]string{"/index.html": put("indexV4", []byte("blog v4\n"))})
	fx.cat.addDeploy(d5, map[string]string{"/index.html": put("indexV5", []byte("blog v5\n"))})
	fx.cat.addDeploy(d6, map[string]string{
		"/index.html": put("indexV6", []byte("blog v6\n")),
		"/404.html":   put("404V6", []byte("custom 404 v6\n")),
	})
	fx.cat.addDeploy(o1, map[string]string{"/index.html": put("other", []byte("other site\n"))})

	cfg.Logger = slog.New(slog.NewJSONHandler(fx.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := New(cfg, fx.cat, fx.blobs)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	fx.h = h
	fx.addr = startServer(t, h)
	return fx
}

// startServer runs h on a real TCP listener on the loopback interface.
func startServer(t testing.TB, h *Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h.ServeHTTP, Name: "atoll", ReadTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.ShutdownWithContext(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// request is one HTTP/1.1 request, written byte for byte as given so tests
// control the exact target and Host.
type request struct {
	method string // default GET
	target string // request target, default "/"
	host   string // default "blog.atoll.test"
	header []string
}

func (r request) raw(close bool) string {
	method, target, host := r.method, r.target, r.host
	if method == "" {
		method = "GET"
	}
	if target == "" {
		target = "/"
	}
	if host == "" {
		host = "blog." + testDomain
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, host)
	for _, h := range r.header {
		b.WriteString(h + "\r\n")
	}
	if close {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// response is what came back on the wire.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) get(key string) string { return r.header.Get(key) }

// do sends one request on a fresh connection and reads the answer. It fails
// the test if the server sends any byte after the response it framed (a
// body on HEAD or 304, a wrong Content-Length).
func (fx *fixture) do(t *testing.T, r request) response {
	t.Helper()
	resp, err := fx.tryDo(r)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// tryDo is do for goroutines other than the test's: it returns the error.
func (fx *fixture) tryDo(r request) (response, error) {
	conn, err := net.DialTimeout("tcp", fx.addr, 5*time.Second)
	if err != nil {
		return response{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, r.raw(true)); err != nil {
		return response{}, err
	}
	br := bufio.NewReader(conn)
	resp, err := tryReadResponse(br, r.method)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", r.method, r.target, err)
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
		return response{}, fmt.Errorf("%s %s: %d unexpected bytes after the response (err %v): %.80q", r.method, r.target, len(rest), err, rest)
	}
	return resp, nil
}

func readResponse(t *testing.T, br *bufio.Reader, method string) response {
	t.Helper()
	resp, err := tryReadResponse(br, method)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func tryReadResponse(br *bufio.Reader, method string) (response, error) {
	if method == "" {
		method = "GET"
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		return response{}, fmt.Errorf("read response: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("read body: %w", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

func etagOf(hash, coding string) string { return makeETag(hash, coding) }

func httpDate(tm time.Time) string { return tm.UTC().Format(http.TimeFormat) }
