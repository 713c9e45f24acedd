package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atoll-hosting/atoll"

	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll/blobstore"
)

// ErrInvalidConfig is returned, wrapped with detail, by New for a Config or a
// dependency it cannot use.
var ErrInvalidConfig = errors.New("invalid serve config")

// Cache-Control values.
const (
	// DefaultCacheControl lets browsers and shared caches store every file
	// but revalidate it on each use: with strong ETags a revalidation is a
	// cheap 304, and a publish or a rollback is visible at once.
	DefaultCacheControl = "public, max-age=0, must-revalidate"

	// notFoundCacheControl goes with every 404, whatever Config.CacheControl
	// says: a missing file may appear with the next publish, so a 404 must
	// not outlive the deploy that produced it.
	notFoundCacheControl = "no-cache"

	// errorCacheControl goes with 5xx answers, which describe a moment of
	// the node, not the site.
	errorCacheControl = "no-store"
)

// Manifest paths the edge looks up besides the requested one.
const (
	indexFile    = "index.html"
	notFoundPage = "/404.html"
)

var strETag = []byte(fasthttp.HeaderETag)

// maxRequestPath bounds the request paths that are looked up at all: a
// manifest path is at most atoll.MaxPathLen bytes, and the edge appends at
// most "/index.html" to a request path.
const maxRequestPath = atoll.MaxPathLen

// Catalog is the replicated metadata the edge reads: sites, deploys and
// manifests. *raft.Store and *raft.FSM implement it. Each method is one
// short, local read; not-found answers wrap atoll.ErrNotFound.
type Catalog interface {
	Site(name string) (atoll.Site, error)
	SiteByDomain(host string) (atoll.Site, error)
	Deploy(id string) (atoll.Deploy, error)
	File(deployID, path string) (string, error)
}

// SitePublisher is implemented by a Catalog that reads a site and the
// deploy it publishes in one read (*raft.FSM and *raft.Store do): the edge
// then resolves a site's host in one read instead of two. Its answers are
// those of Site (or SiteByDomain, with byDomain) followed by Deploy of the
// site's Published: an unknown site wraps atoll.ErrNotFound, a site with
// nothing published comes with the zero Deploy.
type SitePublisher interface {
	SitePublished(name string, byDomain bool) (atoll.Site, atoll.Deploy, error)
}

// Blobs gives the edge the content of files. Package node implements it on
// the local blob store; on an edge it fetches a missing blob from its owners
// first. Stat reports blobstore.ErrNotFound (wrapped) for a blob it cannot
// find; Open returns the identity bytes (encoding "") or a stored variant
// ("br", "zstd", "gzip") and its size, and the caller closes the file.
type Blobs interface {
	Stat(ctx context.Context, hash string) (blobstore.Info, error)
	Open(ctx context.Context, hash, encoding string) (*os.File, int64, error)
}

// Config configures a Handler.
type Config struct {
	// Domain is the platform domain: site "blog" answers at blog.<Domain>,
	// its deploy "abc123" at abc123--blog.<Domain>. Lowercase, no port.
	Domain string

	// CacheControl is sent with every 200, 206, 304 and 301 answer.
	// Empty means DefaultCacheControl.
	CacheControl string

	// CacheBytes is the memory for the bytes of small files (up to 64 KiB
	// each), which are then answered without touching the disk. 0 means
	// DefaultCacheBytes; negative disables it. It only applies when the
	// Catalog implements ChangeNotifier (see Handler).
	CacheBytes int64

	// HTTPSPort is the port of the edge's HTTPS listener, where plain-HTTP
	// requests for an HTTPS-only site are redirected (https.go). 0 means
	// the edge has none: such sites are served over plain HTTP too.
	HTTPSPort int

	// Logger receives errors (level error, attribute component=serve); nil
	// discards them. The normal serving path never logs.
	Logger *slog.Logger

	// Stats, if not nil, counts every request (metrics.go).
	Stats *Stats

	// IndexBytes is the memory for the indexes of large live deploys
	// (index.go). 0 means DefaultIndexBytes; negative disables them. They
	// need a Catalog that implements ChangeNotifier and ManifestScanner.
	IndexBytes int64
	// IndexMinEntries: a deploy with more manifest entries than this gets
	// an index. 0 means IndexMinEntries.
	IndexMinEntries int
}

// DefaultConfig returns the Config of a single local node: sites at
// <site>.localhost and DefaultCacheControl.
func DefaultConfig() Config {
	return Config{Domain: "localhost", CacheControl: DefaultCacheControl}
}

// Handler is the edge: it answers visitors' GET and HEAD requests with the
// files of published deploys. See the package documentation for the rules.
// A Handler is safe for concurrent use.
//
// When the Catalog implements ChangeNotifier (*raft.Store does), the Handler
// keeps in memory what requests read: host -> deploy until the next change
// of the Catalog, request path -> file per deploy (manifests of complete
// deploys never change), blob infos, and the bytes of small files up to
// Config.CacheBytes. cache.go explains why that is always current.
type Handler struct {
	domain       string
	cacheControl string
	cacheCtlB    []byte
	log          *slog.Logger
	cat          Catalog
	publisher    SitePublisher // cat, when it is one
	blobs        Blobs

	httpsOn   bool   // the edge has an HTTPS listener (Config.HTTPSPort)
	httpsPort string // ":<port>" of redirects to it, "" for 443

	notify      ChangeNotifier // nil: nothing is cached
	cacheBytes  int64
	routeBudget int64 // routes cached per generation: maxRoutes
	genMu       sync.Mutex
	gen         atomic.Pointer[generation]
	blobCache   blobCache

	ruleSets  readMap[*deployRules] // by atoll.Deploy.Rules (rules.go)
	authSlots chan struct{}
	otfSlots  chan *otfSlot // on-the-fly compression (onthefly.go)
	stats     *Stats
	indexes   *indexSet // nil: no deploy gets an index (index.go)
}

// New checks cfg and returns a Handler reading metadata from cat and file
// content from blobs.
func New(cfg Config, cat Catalog, blobs Blobs) (*Handler, error) {
	if cat == nil || blobs == nil {
		return nil, fmt.Errorf("%w: catalog and blobs are required", ErrInvalidConfig)
	}
	domain, ok := hostName([]byte(cfg.Domain))
	if !ok || strings.ContainsRune(cfg.Domain, ':') {
		return nil, fmt.Errorf("%w: domain %q is not a host name without port", ErrInvalidConfig, cfg.Domain)
	}
	cc := cfg.CacheControl
	if cc == "" {
		cc = DefaultCacheControl
	}
	for i := 0; i < len(cc); i++ {
		if c := cc[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return nil, fmt.Errorf("%w: cache control %q has a control character", ErrInvalidConfig, cc)
		}
	}
	if cfg.HTTPSPort < 0 || cfg.HTTPSPort > 65535 {
		return nil, fmt.Errorf("%w: HTTPS port %d", ErrInvalidConfig, cfg.HTTPSPort)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cacheBytes := cfg.CacheBytes
	if cacheBytes == 0 {
		cacheBytes = DefaultCacheBytes
	}
	h := &Handler{
		domain:       domain,
		cacheControl: cc,
		cacheCtlB:    []byte(cc),
		log:          log.With("component", "serve"),
		cat:          cat,
		blobs:        blobs,
		cacheBytes:   cacheBytes,
		routeBudget:  maxRoutes,
		httpsOn:      cfg.HTTPSPort != 0,
		httpsPort:    httpsPortSuffix(cfg.HTTPSPort),
		authSlots:    newAuthSlots(),
		otfSlots:     newOTFSlots(),
		stats:        cfg.Stats,
	}
	h.publisher, _ = cat.(SitePublisher)
	if n, ok := cat.(ChangeNotifier); ok {
		h.notify = n
		h.blobCache = blobCache{m: make(map[string]*blobEntry), budget: max(cacheBytes, 0)}
		h.indexes = newIndexes(cfg, cat, h.log)
	}
	return h, nil
}

// target is the deploy a request reads from. It is resolved once per
// request, and every manifest lookup of that request uses its id, so that a
// publish landing mid-request cannot mix two deploys in one answer.
type target struct {
	id       string
	site     string
	modified time.Time   // Last-Modified of every file of the deploy; zero if unknown
	https    httpsPolicy // the site's HTTPS settings (https.go)
	rules    string      // atoll.Deploy.Rules: "" when the deploy has none
	files    int         // manifest entries (index.go)
}

// ServeHTTP answers one request. It is a fasthttp.RequestHandler.
func (h *Handler) ServeHTTP(ctx *fasthttp.RequestCtx) {
	var dv *deployView
	defer h.stats.observe(ctx, &dv) // metrics.go
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Error("405 Method Not Allowed", fasthttp.StatusMethodNotAllowed)
		ctx.Response.Header.Set(fasthttp.HeaderAllow, "GET, HEAD")
		ctx.Response.Header.Set(fasthttp.HeaderXContentTypeOptions, "nosniff")
		return
	}
	dv, err := h.deployFor(h.generation(), ctx.Host())
	if err != nil {
		h.failCatalog(ctx, "resolve host", err)
		return
	}
	if dv == nil {
		plainNotFound(ctx)
		return
	}
	if dv.https != 0 {
		if h.toHTTPS(ctx, dv) {
			return
		}
		defer h.addHSTS(ctx, dv)
	}
	if dv.rules != nil {
		h.serveRules(ctx, dv) // rules.go
		return
	}
	r, failed, err := h.routeFor(dv, ctx.Path())
	if err != nil {
		h.failCatalog(ctx, "look up file", err, "deploy", dv.id, "path", failed)
		return
	}
	switch r.kind {
	case routeFile:
		h.serveFile(ctx, dv, r)
	case routeRedirect:
		h.redirectToDir(ctx, r.file)
	default:
		h.notFound(ctx, dv)
	}
}

// resolve maps a request host to its deploy. ok is false, with a nil error,
// when the host names nothing servable: an unknown host or site, a site with
// nothing published, or a preview of a deploy that is not the site's or not
// complete.
func (h *Handler) resolve(host []byte) (t target, ok bool, err error) {
	name, ok := hostName(host)
	if !ok {
		return target{}, false, nil
	}
	kind, siteName, deployID := route(name, h.domain)
	var site atoll.Site
	switch kind {
	case hostInvalid:
		return target{}, false, nil
	case hostPreview:
		d, err := h.cat.Deploy(deployID)
		if err != nil {
			return target{}, false, notFoundIsFalse(err)
		}
		switch d.State {
		case atoll.StateReady, atoll.StatePublished, atoll.StateSuperseded:
		default:
			return target{}, false, nil
		}
		if d.Site != siteName {
			return target{}, false, nil
		}
		// A preview follows its site's HTTPS settings.
		if site, err = h.cat.Site(siteName); err != nil {
			return target{}, false, notFoundIsFalse(err)
		}
		t = targetOf(d)
		t.https = policyOf(site)
		return t, true, nil
	case hostCustom:
		siteName = name
	}
	site, d, err := h.sitePublished(siteName, kind == hostCustom)
	if err != nil {
		return target{}, false, notFoundIsFalse(err)
	}
	if site.Published == "" || d.Site != site.Name {
		return target{}, false, nil
	}
	t = targetOf(d)
	t.https = policyOf(site)
	return t, true, nil
}

// sitePublished reads site name (a custom domain when byDomain) and its
// published deploy, in one read when the Catalog is a SitePublisher. The
// deploy is zero when the site publishes nothing; a published deploy that
// is gone (the site was deleted between two reads) is ErrNotFound.
func (h *Handler) sitePublished(name string, byDomain bool) (atoll.Site, atoll.Deploy, error) {
	if h.publisher != nil {
		return h.publisher.SitePublished(name, byDomain)
	}
	var site atoll.Site
	var err error
	if byDomain {
		site, err = h.cat.SiteByDomain(name)
	} else {
		site, err = h.cat.Site(name)
	}
	if err != nil || site.Published == "" {
		return site, atoll.Deploy{}, err
	}
	d, err := h.cat.Deploy(site.Published)
	return site, d, err
}

// targetOf returns the target of a deploy. Its Last-Modified is when the
// deploy last went live, or its creation time for a deploy never published
// (a preview): after a rollback to an older deploy the date moves forward,
// so a cache that revalidates with If-Modified-Since alone still sees the
// change. HTTP dates have one-second precision.
func targetOf(d atoll.Deploy) target {
	mod := d.Created
	if d.PublishedAt.After(mod) {
		mod = d.PublishedAt
	}
	if !mod.IsZero() {
		mod = time.Unix(mod.Unix(), 0).UTC()
	}
	return target{id: d.ID, site: d.Site, modified: mod, rules: d.Rules, files: d.Files}
}

func notFoundIsFalse(err error) error {
	if errors.Is(err, atoll.ErrNotFound) {
		return nil
	}
	return err
}

// lookup finds a path in the target deploy's manifest.
func (h *Handler) lookup(t target, p string) (hash string, found bool, err error) {
	hash, err = h.cat.File(t.id, p)
	if err != nil {
		return "", false, notFoundIsFalse(err)
	}
	return hash, true, nil
}

// requestPath checks the request path fasthttp has already percent-decoded
// and normalized, and cleans it once more so that the edge never depends on
// server settings for its safety: a leading "/", no "." or ".." segment, no
// empty segment; a trailing slash is kept. Paths too long to be in any
// manifest are refused.
func requestPath(b []byte) (string, bool) {
	if len(b) == 0 || b[0] != '/' || len(b) > maxRequestPath {
		return "", false
	}
	p := string(b)
	c := path.Clean(p)
	if p[len(p)-1] == '/' && c != "/" {
		c += "/"
	}
	return c, true
}

// redirectToDir answers a request for directory p, which has an index, with
// a 301 to p + "/", keeping the query string. The Location is relative to
// the host, so it stays right behind a TLS-terminating proxy.
func (h *Handler) redirectToDir(ctx *fasthttp.RequestCtx, p string) {
	loc := (&url.URL{Path: p + "/"}).EscapedPath()
	if q := ctx.URI().QueryString(); len(q) > 0 && safeQuery(q) {
		loc += "?" + string(q)
	}
	ctx.Response.Header.Set(fasthttp.HeaderLocation, loc)
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, h.cacheControl)
	ctx.SetStatusCode(fasthttp.StatusMovedPermanently)
}

// safeQuery reports whether a raw query string can be echoed in a header.
func safeQuery(q []byte) bool {
	for _, c := range q {
		if c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// serveFile answers with a file of the deploy: a 200, 206, 304, 412 or 416
// after content negotiation, conditional headers and ranges.
func (h *Handler) serveFile(ctx *fasthttp.RequestCtx, dv *deployView, r *pathRoute) {
	be, err := h.blobFor(ctx, r)
	if err != nil {
		h.failBlob(ctx, "stat blob", err, "deploy", dv.id, "path", r.file, "hash", r.hash)
		return
	}
	info := &be.info
	req := &ctx.Request.Header
	resp := &ctx.Response.Header

	// A range is cut from the identity bytes, so a Range request that will
	// be honoured selects the identity representation.
	rng, rk := byteRange{}, rangeNone
	if v := req.Peek(fasthttp.HeaderRange); len(v) > 0 &&
		ifRangeHolds(req.Peek(fasthttp.HeaderIfRange), be.etag[0], dv.modified) {
		rng, rk = parseRange(v, info.Size)
	}
	coding, size := "", info.Size
	if rk == rangeNone && be.variants {
		ae := parseAcceptEncoding(req.PeekAll(fasthttp.HeaderAcceptEncoding))
		if coding, size = ae.choose(*info); coding == "" && be.otf && h.serveOnTheFly(ctx, dv, r, be, ae) {
			return // compressed per request, onthefly.go
		}
	}
	repr := reprIndex(coding)

	switch evalPreconditions(req, be.etag[repr], dv.modified) {
	case preconditionNotModified:
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		h.setValidators(resp, be.etagB[repr], dv.lastModified, be.variants)
		return
	case preconditionFailed:
		ctx.Error("412 Precondition Failed", fasthttp.StatusPreconditionFailed)
		resp.Set(fasthttp.HeaderXContentTypeOptions, "nosniff")
		return
	}

	switch rk {
	case rangeUnsatisfiable:
		unsatisfiable(ctx, info.Size, be.variants)
		return
	case rangeSingle:
		h.serveRange(ctx, dv, r, be, rng)
		return
	}

	if ctx.IsHead() {
		setContentLength(ctx, size)
	} else if !h.sendBody(ctx, dv, r, be, &coding, size) {
		return
	}
	h.setRepresentation(resp, r.ctype, be.etagB[reprIndex(coding)], coding, dv.lastModified, be.variants)
}

// unsatisfiable answers 416 for a blob of size bytes.
func unsatisfiable(ctx *fasthttp.RequestCtx, size int64, variants bool) {
	resp := &ctx.Response.Header
	ctx.Error("416 Range Not Satisfiable", fasthttp.StatusRequestedRangeNotSatisfiable)
	resp.Set(fasthttp.HeaderContentRange, "bytes */"+strconv.FormatInt(size, 10))
	resp.Set(fasthttp.HeaderAcceptRanges, "bytes")
	resp.Set(fasthttp.HeaderXContentTypeOptions, "nosniff")
	if variants {
		resp.Set(fasthttp.HeaderVary, "Accept-Encoding")
	}
}

// serveRange answers a 206 with bytes rng of the identity representation,
// from memory when the blob is cached there, else streamed (SectionBlobs)
// or from its file.
func (h *Handler) serveRange(ctx *fasthttp.RequestCtx, dv *deployView, r *pathRoute, be *blobEntry, rng byteRange) {
	info := &be.info
	if ctx.IsHead() {
		setContentLength(ctx, rng.length)
	} else if body, cached, err := h.cachedBody(ctx, be, "", info.Size); cached {
		if err != nil {
			h.failOpen(ctx, dv, r, be, err, "")
			return
		}
		ctx.Response.SetBodyRaw(body[rng.start : rng.start+rng.length])
	} else if sec, ok, err := h.openSection(ctx, r.hash, rng); ok || err != nil {
		if err != nil {
			h.failOpen(ctx, dv, r, be, err, "")
			return
		}
		setBodyStream(ctx, sec, rng.length)
	} else {
		f, n, err := h.blobs.Open(ctx, r.hash, "")
		if err != nil {
			h.failOpen(ctx, dv, r, be, err, "")
			return
		}
		if n != info.Size {
			_ = f.Close()
			h.failOpen(ctx, dv, r, be, fmt.Errorf("size %d, stat said %d", n, info.Size), "")
			return
		}
		if _, err := f.Seek(rng.start, io.SeekStart); err != nil {
			_ = f.Close()
			h.failBlob(ctx, "seek blob", err, "deploy", dv.id, "path", r.file, "hash", r.hash)
			return
		}
		setBodyStream(ctx, newFileSection(f, rng.length), rng.length)
	}
	ctx.SetStatusCode(fasthttp.StatusPartialContent)
	resp := &ctx.Response.Header
	resp.Set(fasthttp.HeaderContentRange, contentRange(rng, info.Size))
	h.setRepresentation(resp, r.ctype, be.etagB[0], "", dv.lastModified, be.variants)
}

// sendBody sets the body of a 200: representation *coding of the blob,
// from memory for a small one, else streamed from its file. A variant that
// cannot be had is replaced by the identity bytes, and *coding says so. It
// reports false when it answered with an error instead.
func (h *Handler) sendBody(ctx *fasthttp.RequestCtx, dv *deployView, r *pathRoute, be *blobEntry, coding *string, size int64) bool {
	body, cached, err := h.cachedBody(ctx, be, *coding, size)
	if cached && err != nil && *coding != "" {
		// The variant went away since Stat, or is damaged: the identity
		// bytes are always a correct answer.
		if !errors.Is(err, blobstore.ErrNotFound) {
			h.logError("read blob", err, "deploy", dv.id, "path", r.file, "hash", r.hash, "encoding", *coding)
		}
		h.forget(r, be)
		*coding = ""
		body, cached, err = h.cachedBody(ctx, be, "", be.info.Size)
	}
	if cached {
		if err != nil {
			h.failOpen(ctx, dv, r, be, err, *coding)
			return false
		}
		ctx.Response.SetBodyRaw(body)
		return true
	}
	f, n, err := h.blobs.Open(ctx, r.hash, *coding)
	if err != nil && *coding != "" && errors.Is(err, blobstore.ErrNotFound) {
		// The variant went away since Stat (evicted, or dropped by a
		// scrub): the identity bytes are always a correct answer.
		h.forget(r, be)
		*coding = ""
		f, n, err = h.blobs.Open(ctx, r.hash, "")
	}
	if err != nil {
		h.failOpen(ctx, dv, r, be, err, *coding)
		return false
	}
	setBodyStream(ctx, f, n)
	return true
}

// failOpen answers 503 for a blob whose content cannot be read, and forgets
// what the cache knew of it so that the next request asks Blobs again.
func (h *Handler) failOpen(ctx *fasthttp.RequestCtx, dv *deployView, r *pathRoute, be *blobEntry, err error, coding string) {
	h.forget(r, be)
	h.failBlob(ctx, "open blob", err, "deploy", dv.id, "path", r.file, "hash", r.hash, "encoding", coding)
}

// setContentLength announces the size of the body a HEAD answer leaves out.
func setContentLength(ctx *fasthttp.RequestCtx, size int64) {
	if n := int(size); int64(n) == size {
		ctx.Response.Header.SetContentLength(n)
	}
}

// setBodyStream hands fasthttp a body of size bytes, which it closes once
// written. A plain *os.File (or a fileSection) on a TCP connection goes out
// with sendfile(2).
func setBodyStream(ctx *fasthttp.RequestCtx, body io.ReadCloser, size int64) {
	n := int(size)
	if int64(n) != size {
		n = -1 // a 32-bit int cannot say it: chunked instead
	}
	ctx.SetBodyStream(body, n)
}

var (
	strCacheControl = []byte(fasthttp.HeaderCacheControl)
	strVary         = []byte(fasthttp.HeaderVary)
	strLastModified = []byte(fasthttp.HeaderLastModified)
	strNosniffKey   = []byte(fasthttp.HeaderXContentTypeOptions)
	strAcceptRanges = []byte(fasthttp.HeaderAcceptRanges)
	strNosniff      = []byte("nosniff")
	strBytes        = []byte("bytes")
	strAcceptEnc    = []byte("Accept-Encoding")
)

// setValidators sets the header fields shared by 200, 206 and 304 answers.
// SetCanonical takes the names as written (Set would normalize "ETag" to
// "Etag"; names are case-insensitive either way) without copying or
// checking them again.
func (h *Handler) setValidators(resp *fasthttp.ResponseHeader, etag, lastModified []byte, variants bool) {
	resp.SetCanonical(strETag, etag)
	if lastModified != nil {
		resp.SetCanonical(strLastModified, lastModified)
	}
	resp.SetCanonical(strCacheControl, h.cacheCtlB)
	if variants {
		resp.SetCanonical(strVary, strAcceptEnc)
	}
}

// setRepresentation sets the header fields of a 200 or 206 answer.
func (h *Handler) setRepresentation(resp *fasthttp.ResponseHeader, ctype string, etag []byte, coding string, lastModified []byte, variants bool) {
	resp.SetContentType(ctype)
	resp.SetCanonical(strNosniffKey, strNosniff)
	resp.SetCanonical(strAcceptRanges, strBytes)
	if coding != "" {
		resp.SetContentEncoding(coding)
	}
	h.setValidators(resp, etag, lastModified, variants)
}

func contentRange(r byteRange, size int64) string {
	b := make([]byte, 0, 64)
	b = append(b, "bytes "...)
	b = strconv.AppendInt(b, r.start, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, r.start+r.length-1, 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, size, 10)
	return string(b)
}

func hasVariants(info blobstore.Info) bool {
	for _, v := range info.Variants {
		if codingIndex(v.Encoding) >= 0 {
			return true
		}
	}
	return false
}

// notFound answers 404 with the deploy's /404.html if it has one, else with
// plain text. Conditional and Range headers do not apply to a 404.
func (h *Handler) notFound(ctx *fasthttp.RequestCtx, dv *deployView) {
	r, ok := dv.paths.get(notFoundKey)
	if !ok {
		var err error
		if r, _, err = h.fileOrNotFound(dv.target, notFoundPage); err != nil {
			h.failCatalog(ctx, "look up file", err, "deploy", dv.id, "path", notFoundPage)
			return
		}
		r = dv.keepRoute(notFoundKey, r)
	}
	if r.kind != routeFile {
		plainNotFound(ctx)
		return
	}
	be, err := h.blobFor(ctx, r)
	if err != nil {
		// The page is only a nicer 404: degrade to the plain one.
		h.logError("stat blob", err, "host", string(ctx.Host()), "deploy", dv.id, "path", notFoundPage, "hash", r.hash)
		plainNotFound(ctx)
		return
	}
	coding, size := "", be.info.Size
	if be.variants {
		coding, size = parseAcceptEncoding(ctx.Request.Header.PeekAll(fasthttp.HeaderAcceptEncoding)).choose(be.info)
	}
	if ctx.IsHead() {
		setContentLength(ctx, size)
	} else {
		body, cached, err := h.cachedBody(ctx, be, coding, size)
		if cached && err != nil && coding != "" {
			coding = ""
			body, cached, err = h.cachedBody(ctx, be, "", be.info.Size)
		}
		switch {
		case cached && err != nil:
			h.logError("open blob", err, "host", string(ctx.Host()), "deploy", dv.id, "path", notFoundPage, "hash", r.hash)
			h.forget(r, be)
			plainNotFound(ctx)
			return
		case cached:
			ctx.Response.SetBodyRaw(body)
		default:
			f, n, err := h.blobs.Open(ctx, r.hash, coding)
			if err != nil && coding != "" && errors.Is(err, blobstore.ErrNotFound) {
				coding = ""
				f, n, err = h.blobs.Open(ctx, r.hash, "")
			}
			if err != nil {
				h.logError("open blob", err, "host", string(ctx.Host()), "deploy", dv.id, "path", notFoundPage, "hash", r.hash)
				h.forget(r, be)
				plainNotFound(ctx)
				return
			}
			setBodyStream(ctx, f, n)
		}
	}
	resp := &ctx.Response.Header
	ctx.SetStatusCode(fasthttp.StatusNotFound)
	resp.SetContentType(r.ctype)
	resp.Set(fasthttp.HeaderXContentTypeOptions, "nosniff")
	resp.Set(fasthttp.HeaderCacheControl, notFoundCacheControl)
	if coding != "" {
		resp.SetContentEncoding(coding)
	}
	if be.variants {
		resp.Set(fasthttp.HeaderVary, "Accept-Encoding")
	}
}

// plainNotFound answers a bare 404.
func plainNotFound(ctx *fasthttp.RequestCtx) {
	ctx.Error("404 Not Found", fasthttp.StatusNotFound)
	ctx.Response.Header.Set(fasthttp.HeaderXContentTypeOptions, "nosniff")
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, notFoundCacheControl)
}

// failCatalog answers a request whose metadata read failed: 500, or 503
// when the store is unavailable (closing) or the server shutting down.
func (h *Handler) failCatalog(ctx *fasthttp.RequestCtx, op string, err error, attrs ...any) {
	status := fasthttp.StatusInternalServerError
	if errors.Is(err, atoll.ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		status = fasthttp.StatusServiceUnavailable
	}
	h.fail(ctx, status, op, err, attrs...)
}

// failBlob answers a request whose file exists in the deploy but whose
// content cannot be had right now (missing on this node and its owners,
// peers unreachable, disk error): 503, since another try or another node
// may succeed.
func (h *Handler) failBlob(ctx *fasthttp.RequestCtx, op string, err error, attrs ...any) {
	h.fail(ctx, fasthttp.StatusServiceUnavailable, op, err, attrs...)
}

// fail logs err at error level and answers status with plain text.
func (h *Handler) fail(ctx *fasthttp.RequestCtx, status int, op string, err error, attrs ...any) {
	h.logError(op, err, append(attrs, "host", string(ctx.Host()), "status", status)...)
	ctx.Error(strconv.Itoa(status)+" "+fasthttp.StatusMessage(status), status)
	ctx.Response.Header.Set(fasthttp.HeaderXContentTypeOptions, "nosniff")
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, errorCacheControl)
}

func (h *Handler) logError(op string, err error, attrs ...any) {
	h.log.Error("serve "+op+" failed", append(attrs, "err", err)...)
}
