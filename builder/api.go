package builder

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"syscall"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/raft"
)

// Meta is the replicated metadata the API reads and writes. node implements
// it with the raft store, forwarding Apply to the leader.
type Meta interface {
	// Apply replicates cmd. FSM rejections come back wrapping atoll.ErrNotFound,
	// ErrExists, ErrInvalid or ErrConflict; raft.ErrNotLeader when no leader
	// can take the write.
	Apply(ctx context.Context, cmd raft.Command) error
	Site(name string) (atoll.Site, error)
	Sites() ([]atoll.Site, error)
	Deploy(id string) (atoll.Deploy, error)
	Deploys(site string) ([]atoll.Deploy, error) // newest first
	Files(deployID string, fn func(atoll.File) error) error
	// File returns the content hash of one manifest path, or an error
	// wrapping atoll.ErrNotFound.
	File(deployID, path string) (string, error)
	// Rules returns a deploy's compiled rules (raft.MarkReady.Rules), or
	// an error wrapping atoll.ErrNotFound.
	Rules(deployID string) ([]byte, error)
	AdminTokenHash() string // SHA-256 hex of the cluster's admin token, "" if unset
	// TokenByHash returns the deploy token whose secret hashes (SHA-256,
	// lowercase hex) to hash, or an error wrapping atoll.ErrNotFound.
	TokenByHash(hash string) (atoll.Token, error)
	Tokens() ([]atoll.Token, error) // every deploy token, by id
	FeatureLevel() int              // the cluster's feature level (atoll.MaxFeatureLevel)
}

// The replicated store is a Meta and a CertMeta as it is: tests run the
// API over it directly, and node only puts its forwarding Apply in front.
var (
	_ Meta     = (*raft.Store)(nil)
	_ CertMeta = (*raft.Store)(nil)
)

// Blobs stores file contents. node implements it by placing each blob on its
// owners; a single node is the cluster of one.
type Blobs interface {
	// Put stores the content read from r. hash is the expected SHA-256
	// (lowercase hex), or "" to accept any content; a mismatch fails with an
	// error wrapping blobstore.ErrHashMismatch and stores nothing.
	Put(ctx context.Context, hash string, r io.Reader) (blobstore.Info, error)
	// Stat reports a stored blob, or an error wrapping blobstore.ErrNotFound.
	Stat(ctx context.Context, hash string) (blobstore.Info, error)
	// StatMany returns the stored blobs among hashes, keyed by hash; the
	// ones absent from the map are not stored. It lets node ask each owner
	// once for many blobs instead of once per blob.
	StatMany(ctx context.Context, hashes []string) (map[string]blobstore.Info, error)
	// Open returns a stored blob's identity bytes (encoding "") and their
	// size; the caller closes the file. The builder reads a deploy's
	// _redirects and _headers through it to compile them.
	Open(ctx context.Context, hash, encoding string) (*os.File, int64, error)
}

// Config configures the API. Start from DefaultConfig.
type Config struct {
	// AdminTokenRotated, when set, is called with the new admin token after
	// PUT /v1/admin-token applied it (node rewrites its token file). An
	// error is logged; the rotation stands.
	AdminTokenRotated func(token string) error
	// SealCertKey, when set, turns a certificate's PEM private key into
	// what the replicated state records (node seals it with a key derived
	// from the cluster key, raft.SealCertKey); nil records the PEM itself.
	SealCertKey func(domain, keyPEM string) (string, error)
	// Domain is the serving domain: sites answer at <site>.<Domain> and a
	// deploy's preview at <id>--<site>.<Domain>. It is the host passed to
	// SiteURL; custom domains under it are refused, since they would shadow
	// site hosts.
	Domain string
	// SiteURL turns a host such as "demo.localhost" into the URL visitors
	// use, e.g. "http://demo.localhost:8080/". Nil leaves url and
	// preview_url out of responses.
	SiteURL func(host string) string
	// MaxBlobBytes bounds one blob upload and one tar member.
	MaxBlobBytes int64
	// MaxBatchBytes and MaxBatchBlobs bound one POST /v1/blobs: its body
	// as sent, and the blobs it carries (each also within MaxBlobBytes).
	MaxBatchBytes int64
	MaxBatchBlobs int
	// MaxTarBytes bounds a tar upload, both the body as sent and the sum of
	// its files once decompressed.
	MaxTarBytes int64
	// MaxJSONBytes bounds a JSON request body (a manifest of a million files
	// is ~100 MiB).
	MaxJSONBytes int64
	// MaxFiles bounds the files of one deploy, unless the site has its own
	// limit (atoll.Site.MaxFiles).
	MaxFiles int
	// SiteMaxBytes bounds the total identity bytes of one deploy, and
	// SiteMaxUploading the deploys a site may have uploading at once,
	// unless the site has its own (atoll.Site.MaxBytes, MaxUploading).
	SiteMaxBytes     int64
	SiteMaxUploading int
	// TempDir holds tar uploads while they are checked; created if missing.
	TempDir string
	// Room, when set, is asked before a tar upload is spooled to TempDir
	// (for its Content-Length) and again for every SpoolCheckBytes
	// written: it returns an error wrapping blobstore.ErrNoSpace when need
	// more bytes there would eat into the space the node keeps free, and
	// the upload fails with 507, its spool file removed.
	Room func(dir string, need int64) error
	// RequireFeature, when set, is asked before a call writes what only
	// nodes of the given feature level understand (a new command type, or
	// a field an older node would get wrong): it returns an
	// *atoll.FeatureError (409, naming the nodes that hold the cluster
	// back) while the cluster is below level. Nil allows every level.
	RequireFeature func(ctx context.Context, feature string, level int) error
	// IssuedCerts, when set, returns what ACME issued (or is ordering) for
	// the names of a site that GET /v1/sites/{site}/certs lists besides the
	// uploaded certificates, which win for the same name.
	IssuedCerts func(site string) ([]atoll.CertInfo, error)
	// EdgeHTTPS says this node's edge has an HTTPS listener. Without one,
	// a PATCH that turns a site's https_only on is refused (409): an edge
	// has no HTTPS to send visitors to, and serves such a site over plain
	// HTTP (package serve).
	EdgeHTTPS bool
	// Logger receives server-side failures; tokens are never logged.
	Logger *slog.Logger
}

// DefaultConfig returns the limits the public contract promises.
func DefaultConfig() Config {
	return Config{
		Domain:        "localhost",
		MaxBlobBytes:  512 << 20,
		MaxBatchBytes: 64 << 20,
		MaxBatchBlobs: 4096,
		MaxTarBytes:   4 << 30,
		MaxJSONBytes:  128 << 20,
		MaxFiles:      1_000_000,
		TempDir:       os.TempDir(),

		SiteMaxBytes:     4 << 30,
		SiteMaxUploading: 8,
	}
}

// API serves the builder routes. Create it with New and mount it with
// Register.
type API struct {
	cfg   Config
	meta  Meta
	blobs Blobs
	log   *slog.Logger
	// confirmed remembers create-time blob checks (confirmed.go).
	confirmed *confirmations
	// creating counts, per site, the deploy creates this node is serving
	// (limits.go).
	creating *inFlight
}

// New checks cfg and returns the API. Zero limits take DefaultConfig's
// values; negative ones are an error.
func New(cfg Config, meta Meta, blobs Blobs) (*API, error) {
	if meta == nil || blobs == nil {
		return nil, errors.New("builder: meta and blobs are required")
	}
	def := DefaultConfig()
	if cfg.MaxBlobBytes < 0 || cfg.MaxBatchBytes < 0 || cfg.MaxBatchBlobs < 0 || cfg.MaxTarBytes < 0 || cfg.MaxJSONBytes < 0 || cfg.MaxFiles < 0 || cfg.SiteMaxBytes < 0 || cfg.SiteMaxUploading < 0 {
		return nil, errors.New("builder: limits must not be negative")
	}
	if cfg.MaxBlobBytes == 0 {
		cfg.MaxBlobBytes = def.MaxBlobBytes
	}
	if cfg.MaxBatchBytes == 0 {
		cfg.MaxBatchBytes = def.MaxBatchBytes
	}
	if cfg.MaxBatchBlobs == 0 {
		cfg.MaxBatchBlobs = def.MaxBatchBlobs
	}
	if cfg.MaxTarBytes == 0 {
		cfg.MaxTarBytes = def.MaxTarBytes
	}
	if cfg.MaxJSONBytes == 0 {
		cfg.MaxJSONBytes = def.MaxJSONBytes
	}
	if cfg.MaxFiles == 0 {
		cfg.MaxFiles = def.MaxFiles
	}
	if cfg.SiteMaxBytes == 0 {
		cfg.SiteMaxBytes = def.SiteMaxBytes
	}
	if cfg.SiteMaxUploading == 0 {
		cfg.SiteMaxUploading = def.SiteMaxUploading
	}
	if cfg.TempDir == "" {
		cfg.TempDir = def.TempDir
	}
	cfg.Domain = strings.ToLower(strings.Trim(cfg.Domain, "."))
	if err := os.MkdirAll(cfg.TempDir, 0o700); err != nil {
		return nil, fmt.Errorf("builder: temp dir: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &API{cfg: cfg, meta: meta, blobs: blobs, log: log.With("component", "builder"), confirmed: newConfirmations(), creating: newInFlight()}, nil
}

// Scope is who may call a route of a node's API. The table of routes
// (Routes here, node's for the whole listener) names one for each route,
// and the function that registers the table puts the scope's guard in
// front of the handler. The zero Scope is no scope: registering it panics,
// so a route cannot be left open by omission.
type Scope int

// Scopes. Builder's routes use Admin, Site and Token; node's own routes add
// Public, Peer and AdminOrPeer, whose guards are node's (see Guard).
const (
	Public      Scope = iota + 1 // anyone (health, readiness, metrics)
	Admin                        // the admin token only (RequireAuth)
	Site                         // a deploy token whose site is the {site} of the path, or the admin (RequireSite)
	Token                        // any valid token; the handler checks the site of what it touches (RequireToken)
	Peer                         // another node: the cluster key (and a cluster TLS certificate)
	AdminOrPeer                  // the admin token, or the cluster key of a node joining by itself
)

var scopeNames = [...]string{Public: "public", Admin: "admin", Site: "site", Token: "token", Peer: "peer", AdminOrPeer: "admin-or-peer"}

func (s Scope) String() string {
	if s > 0 && int(s) < len(scopeNames) {
		return scopeNames[s]
	}
	return fmt.Sprintf("Scope(%d)", int(s))
}

// Route is one endpoint: a request with Method whose path matches Pattern
// (a net/http pattern path) goes to Handler, behind Scope's guard.
type Route struct {
	Method  string
	Pattern string
	Scope   Scope
	Handler http.Handler
}

// Routes returns every /v1/sites, /v1/deploys, /v1/blobs and /v1/tokens
// route, each with the scope it needs (what a deploy token may do: see the
// package doc). It registers nothing: node mounts them in its table,
// Register alone.
func (a *API) Routes() []Route {
	return []Route{
		{"POST", "/v1/sites", Admin, http.HandlerFunc(a.createSite)},
		{"GET", "/v1/sites", Admin, http.HandlerFunc(a.listSites)},
		{"GET", "/v1/sites/{site}", Site, http.HandlerFunc(a.getSite)},
		{"PATCH", "/v1/sites/{site}", Admin, http.HandlerFunc(a.updateSite)},
		{"DELETE", "/v1/sites/{site}", Admin, http.HandlerFunc(a.deleteSite)},
		{"PUT", "/v1/sites/{site}/lock", Admin, http.HandlerFunc(a.lockSite)},
		{"DELETE", "/v1/sites/{site}/lock", Admin, http.HandlerFunc(a.lockSite)},
		{"POST", "/v1/sites/{site}/deploys", Site, http.HandlerFunc(a.createDeploy)},
		{"GET", "/v1/sites/{site}/deploys", Site, http.HandlerFunc(a.listDeploys)},
		{"GET", "/v1/deploys/{id}", Token, http.HandlerFunc(a.getDeploy)},          // a.deploy checks the deploy's site
		{"GET", "/v1/deploys/{id}/route", Token, http.HandlerFunc(a.route)},        // idem
		{"POST", "/v1/deploys/{id}/finalize", Token, http.HandlerFunc(a.finalize)}, // idem
		{"POST", "/v1/deploys/{id}/publish", Token, http.HandlerFunc(a.publish)},   // idem
		{"PUT", "/v1/blobs/{hash}", Token, http.HandlerFunc(a.putBlob)},            // content-addressed, never read back: any site may add
		{"POST", "/v1/blobs", Token, http.HandlerFunc(a.putBlobBatch)},             // idem, many at once (blobbatch.go)
		{"POST", "/v1/tokens", Admin, http.HandlerFunc(a.createToken)},
		{"GET", "/v1/tokens", Admin, http.HandlerFunc(a.listTokens)},
		{"DELETE", "/v1/tokens/{id}", Admin, http.HandlerFunc(a.revokeToken)},
		{"PUT", "/v1/admin-token", Admin, http.HandlerFunc(a.rotateAdminToken)},
		{"PUT", "/v1/sites/{site}/certs/{domain}", Admin, http.HandlerFunc(a.putCert)}, // certs.go
		{"GET", "/v1/sites/{site}/certs", Admin, http.HandlerFunc(a.listCerts)},
		{"DELETE", "/v1/sites/{site}/certs/{domain}", Admin, http.HandlerFunc(a.deleteCert)},
	}
}

// Guard returns h behind the guard of s, for the scopes the API checks
// itself: Public (none), Admin, Site and Token. It panics on any other:
// their guards belong to whoever registers such routes (node).
func (a *API) Guard(s Scope, h http.Handler) http.Handler {
	switch s {
	case Public:
		return h
	case Admin:
		return a.RequireAuth(h)
	case Site:
		return a.RequireSite(h)
	case Token:
		return a.RequireToken(h)
	}
	panic(fmt.Sprintf("builder: no guard for scope %v", s))
}

// Register mounts Routes on mux, each behind Guard: the builder API on its
// own, as tests serve it. A node mounts them in its own table instead.
func (a *API) Register(mux *http.ServeMux) {
	for _, r := range a.Routes() {
		mux.Handle(r.Method+" "+r.Pattern, a.Guard(r.Scope, r.Handler))
	}
}

// Caller is who a request authenticated as: the admin, or a deploy token
// scoped to one site. The zero Caller may do nothing.
type Caller struct {
	Admin   bool   // holds the admin token
	Site    string // the deploy token's site; "" for the admin
	TokenID string // the deploy token's id; "" for the admin
}

// mayTouch reports whether the caller may act on site.
func (c Caller) mayTouch(site string) bool { return c.Admin || c.Site != "" && c.Site == site }

type callerKey struct{}

// CallerFrom returns the caller that RequireAuth or RequireToken
// authenticated, and false outside those wrappers.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// RequireAuth lets a request through only when it carries the admin token
// as "Authorization: Bearer <token>": a token whose SHA-256 (hex) is the
// cluster's recorded hash (the replicated state is the only source of the
// admin token: PUT /v1/admin-token rotates it everywhere). A missing or unknown
// token is a 401 with WWW-Authenticate; a valid deploy token is a 403, since
// it is scoped to a site. Every comparison takes constant time, and with no
// admin token configured anywhere every request is refused: an
// unconfigured cluster is closed, not open. The handler finds the caller
// with CallerFrom. node puts its own routes (/v1/status, /v1/nodes) behind
// it.
func (a *API) RequireAuth(next http.Handler) http.Handler {
	return a.RequireToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, _ := CallerFrom(r.Context()); !c.Admin {
			forbidden(w, c)
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// RequireToken is RequireAuth that also lets deploy tokens through: the
// handler must check what the caller (CallerFrom) may touch.
func (a *API) RequireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="atoll"`)
			WriteError(w, http.StatusUnauthorized, "missing token: send it as \"Authorization: Bearer <token>\"")
			return
		}
		c, ok, err := a.authenticate(token)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="atoll", error="invalid_token"`)
			WriteError(w, http.StatusUnauthorized, "invalid token: it is not the admin token nor a deploy token (revoked?); check --token / ATOLL_TOKEN")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}

// authenticate finds who token belongs to. The admin token's hash is
// compared in constant time with the recorded hash. A
// deploy token is looked up by the SHA-256 of what was sent (an index
// lookup: what it reveals by its timing is about a hash, not the secret),
// and the stored hash is then compared in constant time too. The token
// itself never leaves this function: not in errors, not in logs.
func (a *API) authenticate(token string) (Caller, bool, error) {
	sum := sha256.Sum256([]byte(token))
	got := hex.EncodeToString(sum[:])
	if want := a.meta.AdminTokenHash(); want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(strings.ToLower(want))) == 1 {
		return Caller{Admin: true}, true, nil
	}
	t, err := a.meta.TokenByHash(got)
	switch {
	case errors.Is(err, atoll.ErrNotFound):
		return Caller{}, false, nil
	case err != nil:
		return Caller{}, false, fmt.Errorf("look up token: %w", err)
	case t.Site == "" || subtle.ConstantTimeCompare([]byte(got), []byte(t.Hash)) != 1:
		return Caller{}, false, nil
	}
	return Caller{Site: t.Site, TokenID: t.ID}, true, nil
}

// RequireSite is RequireToken that refuses, with a 403 before the handler
// reads anything, a deploy token whose site is not the {site} of the path.
func (a *API) RequireSite(next http.Handler) http.Handler {
	return a.RequireToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, _ := CallerFrom(r.Context()); !c.mayTouch(r.PathValue("site")) {
			forbidden(w, c)
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// scopeError is the 403 for a deploy token used outside its site.
func scopeError(c Caller) *apiError {
	if c.Site == "" {
		return errorf(http.StatusForbidden, "this call needs the admin token")
	}
	return errorf(http.StatusForbidden, "this token is scoped to site %s", c.Site)
}

func forbidden(w http.ResponseWriter, c Caller) {
	e := scopeError(c)
	WriteJSON(w, e.status, e.body)
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
// The scheme is case-insensitive (RFC 9110).
func bearer(h string) (string, bool) {
	scheme, token, found := strings.Cut(strings.TrimSpace(h), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// WriteJSON writes v as the JSON body with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal error: encoding the response failed"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// WriteError writes {"error": msg} with the given status.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, atoll.ErrorResponse{Error: msg})
}

// apiError is an error with the status and body the API answers it with.
type apiError struct {
	status int
	body   atoll.ErrorResponse
}

func (e *apiError) Error() string { return e.body.Error }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, body: atoll.ErrorResponse{Error: fmt.Sprintf(format, args...)}}
}

// fail answers err. An *apiError carries its own status and body; other
// errors are mapped from their sentinels, and anything unknown is a 500 that
// is logged and not shown.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		if ae.status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		WriteJSON(w, ae.status, ae.body)
		return
	}
	status, msg := http.StatusInternalServerError, "internal error; the server log has details"
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, blobstore.ErrNoSpace), errors.Is(err, syscall.ENOSPC):
		// A full disk, or one below the node's --min-free reserve.
		status, msg = http.StatusInsufficientStorage, err.Error()
	case errors.Is(err, ErrUnavailable):
		status, msg = http.StatusServiceUnavailable, err.Error()
		w.Header().Set("Retry-After", "1")
	case errors.As(err, &mbe):
		status, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than the limit of %d bytes", mbe.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The API's body deadlines (node's paced): a stall or a drip.
		status, msg = http.StatusRequestTimeout, "the request body stopped arriving or came too slowly (see the server's --api-read-timeout and --api-min-rate); retry on a steadier connection"
	case errors.Is(err, raft.ErrStorage):
		status, msg = http.StatusServiceUnavailable, err.Error()
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, raft.ErrNotLeader):
		status, msg = http.StatusServiceUnavailable, "the cluster has no leader right now; retry in a moment"
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, atoll.ErrNotFound), errors.Is(err, blobstore.ErrNotFound):
		status, msg = http.StatusNotFound, err.Error()
	case errors.Is(err, atoll.ErrExists), errors.Is(err, atoll.ErrConflict):
		status, msg = http.StatusConflict, err.Error()
	case errors.Is(err, atoll.ErrLimit):
		status, msg = http.StatusTooManyRequests, err.Error()
	case errors.Is(err, atoll.ErrInvalid), errors.Is(err, blobstore.ErrHashMismatch), errors.Is(err, blobstore.ErrInvalidHash):
		status, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads this answer.
		status, msg = 499, "request canceled"
	}
	if status >= 500 && status != http.StatusServiceUnavailable {
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	WriteError(w, status, msg)
}
