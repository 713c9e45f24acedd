package serve

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"runtime"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll/siterules"
)

// RuleSource is implemented by a Catalog that records deploys' compiled
// _redirects and _headers (*raft.FSM and *raft.Store do): Rules returns
// what siterules.Encode made for a deploy whose atoll.Deploy.Rules is set.
// A deploy with rules is not served by a Handler whose Catalog lacks it
// (500): serving it plain would drop its Basic-Auth.
type RuleSource interface {
	Rules(deployID string) ([]byte, error)
}

// Bounds of the rules' caches.
const (
	maxRuleSets  = 64      // compiled rule sets, shared by deploys with the same rules
	maxAuthCache = 1 << 12 // verified credentials per rule set
)

// deployRules is a deploy's compiled rules as the edge uses them, cached by
// the content hash of the encoded rules (atoll.Deploy.Rules), which names
// them exactly: a publish or rollback switches the deploy, and with it the
// rules, in one step. Deploys with the same rules share them; what depends
// on a deploy's files is kept in its path routes (pathRoute.ruled).
type deployRules struct {
	m        *siterules.Matcher
	hasQuery bool                           // some redirect matches query parameters: outcomes depend on more than the path
	authOK   readMap[*siterules.Credential] // SHA-256 of an Authorization value -> the credential it verified
}

// ruledPath is what the rules say for one request path of one deploy.
type ruledPath struct {
	set    []headerKV
	remove [][]byte
	auth   []*siterules.Credential
	cache  bool // set has Cache-Control

	redirectKnown bool // rule and target below are the outcome (no query rules)
	rule          *siterules.Redirect
	target        string
}

type headerKV struct{ name, value []byte }

var strCacheControlLower = []byte("cache-control")

// rulesFor returns the compiled rules of a deploy whose record names them.
func (h *Handler) rulesFor(t target) (*deployRules, error) {
	key := []byte(t.rules)
	if dr, ok := h.ruleSets.get(key); ok {
		return dr, nil
	}
	src, ok := h.cat.(RuleSource)
	if !ok {
		return nil, fmt.Errorf("deploy %s has rules and the catalog cannot read them", t.id)
	}
	enc, err := src.Rules(t.id)
	if err != nil {
		return nil, fmt.Errorf("read rules of deploy %s: %w", t.id, err)
	}
	if sum := sha256.Sum256(enc); hex.EncodeToString(sum[:]) != t.rules {
		return nil, fmt.Errorf("rules of deploy %s do not match their hash", t.id)
	}
	m, err := siterules.Load(enc)
	if err != nil {
		return nil, err
	}
	dr := &deployRules{m: m}
	for _, rd := range m.Rules().Redirects {
		dr.hasQuery = dr.hasQuery || len(rd.Query) > 0
	}
	dr, _ = h.ruleSets.put(key, dr, maxRuleSets)
	return dr, nil
}

// ruledPathFor computes what the rules say for cleaned request path p,
// where exists tells whether a file (or directory index) is at p.
func (dr *deployRules) ruledPathFor(p string, exists bool) *ruledPath {
	hs := dr.m.Headers(p)
	rp := &ruledPath{auth: hs.Auth}
	for _, x := range hs.Set {
		rp.set = append(rp.set, headerKV{[]byte(x.Name), []byte(x.Value)})
		rp.cache = rp.cache || x.Name == fasthttp.HeaderCacheControl
	}
	for _, name := range hs.Remove {
		rp.remove = append(rp.remove, []byte(name))
	}
	if !dr.hasQuery {
		rp.rule, rp.target, _ = dr.m.Redirect(p, nil, exists)
		rp.redirectKnown = true
	}
	return rp
}

// serveRules answers a request for a deploy that has rules: Basic-Auth,
// then _redirects (a file at the path shadows the rules not forced with
// "!"), then the files as without rules, and finally the _headers of the
// request path. _redirects and _headers themselves are never served.
func (h *Handler) serveRules(ctx *fasthttp.RequestCtx, dv *deployView) {
	raw := ctx.Path()
	r, failed, err := h.routeFor(dv, raw)
	if err != nil {
		h.failCatalog(ctx, "look up file", err, "deploy", dv.id, "path", failed)
		return
	}
	rp := r.ruled.Load()
	if rp == nil {
		p, ok := requestPath(raw)
		if !ok {
			h.notFound(ctx, dv)
			return
		}
		rp = dv.rules.ruledPathFor(p, !hidden(r) && (r.kind == routeFile || r.kind == routeRedirect))
		r.ruled.Store(rp)
	}
	if hidden(r) {
		r = &pathRoute{kind: routeNotFound}
	}
	if len(rp.auth) > 0 && !h.authorized(ctx, dv.rules, rp.auth) {
		challenge(ctx)
		return
	}
	rule, to := rp.rule, rp.target
	if !rp.redirectKnown {
		p, _ := requestPath(raw) // valid: rp exists
		rule, to, _ = dv.rules.m.Redirect(p, queryArgs{&ctx.Request}, r.kind == routeFile || r.kind == routeRedirect)
	}
	switch {
	case rule == nil && r.kind == routeFile:
		h.serveFile(ctx, dv, r)
	case rule == nil && r.kind == routeRedirect:
		h.redirectToDir(ctx, r.file)
	case rule == nil:
		h.notFound(ctx, dv)
	case rule.Status >= 300 && rule.Status < 400:
		h.ruleRedirect(ctx, rule.Status, to)
	default:
		h.rewrite(ctx, dv, rule.Status, to)
	}
	applyHeaders(ctx, rp, len(rp.auth) > 0)
}

// hidden reports a route to a rule file, which is never served.
func hidden(r *pathRoute) bool {
	return r.kind == routeFile && (r.file == siterules.RedirectsFile || r.file == siterules.HeadersFile)
}

// queryArgs gives the matcher a request's query parameters.
type queryArgs struct{ req *fasthttp.Request }

func (q queryArgs) Get(key string) (string, bool) {
	args := q.req.URI().QueryArgs()
	if !args.Has(key) {
		return "", false
	}
	return string(args.Peek(key)), true
}

// ruleRedirect answers a redirect rule. A target path is escaped; the
// request's query string is kept unless the target has one.
func (h *Handler) ruleRedirect(ctx *fasthttp.RequestCtx, status int, to string) {
	loc := to
	if strings.HasPrefix(to, "/") {
		pathPart, rest := to, ""
		if i := strings.IndexAny(to, "?#"); i >= 0 {
			pathPart, rest = to[:i], to[i:]
		}
		loc = (&url.URL{Path: pathPart}).EscapedPath() + rest
	}
	if !strings.ContainsRune(to, '?') {
		if q := ctx.URI().QueryString(); len(q) > 0 && safeQuery(q) {
			frag := ""
			if i := strings.IndexByte(loc, '#'); i >= 0 {
				loc, frag = loc[:i], loc[i:]
			}
			loc += "?" + string(q) + frag
		}
	}
	ctx.Response.Header.Set(fasthttp.HeaderLocation, loc)
	ctx.Response.Header.Set(fasthttp.HeaderCacheControl, h.cacheControl)
	ctx.SetStatusCode(status)
}

// rewrite answers a 200, 404 or 410 rule with the bytes of target, a path
// of the same deploy. A 200 is served as if the target had been requested
// (content type, conditional requests, ranges, compression); a 404 or 410
// sends the whole target with that status and no validators. A target
// that is missing (or a rule file) gets the deploy's 404.
func (h *Handler) rewrite(ctx *fasthttp.RequestCtx, dv *deployView, status int, to string) {
	if i := strings.IndexAny(to, "?#"); i >= 0 {
		to = to[:i]
	}
	tr, failed, err := h.routeFor(dv, []byte(to))
	if err == nil && tr.kind == routeRedirect {
		tr, failed, err = h.routeFor(dv, []byte(tr.file+"/"))
	}
	if err != nil {
		h.failCatalog(ctx, "look up file", err, "deploy", dv.id, "path", failed)
		return
	}
	if tr.kind != routeFile || hidden(tr) {
		h.notFound(ctx, dv)
		return
	}
	if status == fasthttp.StatusOK {
		h.serveFile(ctx, dv, tr)
		return
	}
	req := &ctx.Request.Header
	for _, name := range []string{fasthttp.HeaderRange, fasthttp.HeaderIfMatch, fasthttp.HeaderIfNoneMatch,
		fasthttp.HeaderIfModifiedSince, fasthttp.HeaderIfUnmodifiedSince, fasthttp.HeaderIfRange} {
		req.Del(name)
	}
	h.serveFile(ctx, dv, tr)
	if ctx.Response.StatusCode() != fasthttp.StatusOK {
		return // an error answer
	}
	ctx.SetStatusCode(status)
	resp := &ctx.Response.Header
	resp.DisableNormalizing() // the ETag was set as written (SetCanonical), not as Del would spell it
	resp.DelBytes(strETag)
	resp.EnableNormalizing()
	resp.Del(fasthttp.HeaderLastModified)
	resp.Del(fasthttp.HeaderAcceptRanges)
	resp.Set(fasthttp.HeaderCacheControl, notFoundCacheControl)
}

// applyHeaders sets and removes what _headers says for the path. Its
// Cache-Control replaces the default on 2xx and 3xx answers only: a 404
// keeps no-cache, so that a file the next publish adds is not hidden by a
// cached miss. A protected path without its own Cache-Control is private,
// so that shared caches do not hand it to others. 5xx answers are left
// alone.
func applyHeaders(ctx *fasthttp.RequestCtx, rp *ruledPath, protected bool) {
	status := ctx.Response.StatusCode()
	if status >= 500 {
		return
	}
	cacheable := status >= 200 && status < 400
	resp := &ctx.Response.Header
	for _, x := range rp.set {
		if !cacheable && bytes.EqualFold(x.name, strCacheControlLower) {
			continue
		}
		resp.SetCanonical(x.name, x.value) // canonical and checked when compiled
	}
	for _, name := range rp.remove {
		if !cacheable && bytes.EqualFold(name, strCacheControlLower) {
			continue
		}
		resp.DelBytes(name)
	}
	if protected && cacheable && !rp.cache {
		resp.Set(fasthttp.HeaderCacheControl, protectedCacheControl)
	}
}

// protectedCacheControl goes with answers for Basic-Auth protected paths
// whose _headers do not say otherwise.
const protectedCacheControl = "private, max-age=0, must-revalidate"

// challenge answers 401 asking for Basic credentials.
func challenge(ctx *fasthttp.RequestCtx) {
	ctx.Error("401 Unauthorized", fasthttp.StatusUnauthorized)
	resp := &ctx.Response.Header
	resp.Set(fasthttp.HeaderWWWAuthenticate, `Basic realm="Restricted", charset="UTF-8"`)
	resp.Set(fasthttp.HeaderXContentTypeOptions, "nosniff")
	resp.Set(fasthttp.HeaderCacheControl, errorCacheControl)
}

// authorized checks the request's Basic credentials against the users
// allowed at its path. A verification is one PBKDF2 (tens of
// milliseconds), so successes are remembered per rule set, keyed by the
// SHA-256 of the Authorization value, and at most authSlots verifications
// run at once: a flood of wrong passwords costs those cores, not all.
func (h *Handler) authorized(ctx *fasthttp.RequestCtx, dr *deployRules, allowed []*siterules.Credential) bool {
	v := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	const prefix = "Basic "
	if len(v) <= len(prefix) || !strings.EqualFold(string(v[:len(prefix)]), prefix) || len(v) > 1024 {
		return false
	}
	key := sha256.Sum256(v)
	if c, ok := dr.authOK.get(key[:]); ok {
		for _, a := range allowed {
			if a == c {
				return true
			}
		}
	}
	dec, err := base64.StdEncoding.DecodeString(string(v[len(prefix):]))
	if err != nil {
		return false
	}
	user, pass, ok := strings.Cut(string(dec), ":")
	if !ok {
		return false
	}
	// One slow hash whatever the user: the candidate is the allowed
	// credential with that user name, found without an early exit.
	cand := allowed[0]
	for _, a := range allowed {
		if subtle.ConstantTimeCompare([]byte(a.User), []byte(user)) == 1 {
			cand = a
		}
	}
	h.authSlots <- struct{}{}
	good := cand.Verify(user, pass)
	<-h.authSlots
	if good {
		dr.authOK.put(key[:], cand, maxAuthCache)
	}
	return good
}

// newAuthSlots bounds concurrent password verifications to half the cores.
func newAuthSlots() chan struct{} { return make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)) }
