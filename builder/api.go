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

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/raft"
)

// Meta is the replicated metadata the API reads and writes. node implements
// it with the raft store, forwarding Apply to the leader.
type Meta interface {
	// Apply replicates cmd. FSM rejections come back wrapping raft.ErrNotFound,
	// ErrExists, ErrInvalid or ErrConflict; raft.ErrNotLeader when no leader
	// can take the write.
	Apply(ctx context.Context, cmd raft.Command) error
	Site(name string) (raft.Site, error)
	Sites() ([]raft.Site, error)
	Deploy(id string) (raft.Deploy, error)
	Deploys(site string) ([]raft.Deploy, error) // newest first
	Files(deployID string, fn func(raft.File) error) error
	AdminTokenHash() string // SHA-256 hex of the cluster's admin token, "" if unset
}

// Blobs stores file contents. node implements it by placing each blob on its
// owners; a single node is the cluster of one.
type Blobs interface {
	// Put stores the content read from r. hash is the expected SHA-256
	// (lowercase hex), or "" to accept any content; a mismatch fails with an
	// error wrapping blobstore.ErrHashMismatch and stores nothing.
	Put(ctx context.Context, hash string, r io.Reader) (blobstore.Info, error)
	// Stat reports a stored blob, or an error wrapping blobstore.ErrNotFound.
	Stat(ctx context.Context, hash string) (blobstore.Info, error)
}

// Config configures the API. Start from DefaultConfig.
type Config struct {
	// AdminToken, when set, is accepted as a bearer token in addition to the
	// token whose hash the cluster records (Meta.AdminTokenHash).
	AdminToken string
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
	// MaxTarBytes bounds a tar upload, both the body as sent and the sum of
	// its files once decompressed.
	MaxTarBytes int64
	// MaxJSONBytes bounds a JSON request body (a manifest of a million files
	// is ~100 MiB).
	MaxJSONBytes int64
	// MaxFiles bounds the files of one deploy.
	MaxFiles int
	// TempDir holds tar uploads while they are checked; created if missing.
	TempDir string
	// Logger receives server-side failures; tokens are never logged.
	Logger *slog.Logger
}

// DefaultConfig returns the limits the public contract promises.
func DefaultConfig() Config {
	return Config{
		Domain:       "localhost",
		MaxBlobBytes: 512 << 20,
		MaxTarBytes:  4 << 30,
		MaxJSONBytes: 128 << 20,
		MaxFiles:     1_000_000,
		TempDir:      os.TempDir(),
	}
}

// API serves the builder routes. Create it with New and mount it with
// Register.
type API struct {
	cfg   Config
	meta  Meta
	blobs Blobs
	log   *slog.Logger
}

// New checks cfg and returns the API. Zero limits take DefaultConfig's
// values; negative ones are an error.
func New(cfg Config, meta Meta, blobs Blobs) (*API, error) {
	if meta == nil || blobs == nil {
		return nil, errors.New("builder: meta and blobs are required")
	}
	def := DefaultConfig()
	if cfg.MaxBlobBytes < 0 || cfg.MaxTarBytes < 0 || cfg.MaxJSONBytes < 0 || cfg.MaxFiles < 0 {
		return nil, errors.New("builder: limits must not be negative")
	}
	if cfg.MaxBlobBytes == 0 {
		cfg.MaxBlobBytes = def.MaxBlobBytes
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
	return &API{cfg: cfg, meta: meta, blobs: blobs, log: log.With("component", "builder")}, nil
}

// Register mounts every /v1/sites, /v1/deploys and /v1/blobs route on mux,
// each behind RequireAuth.
func (a *API) Register(mux *http.ServeMux) {
	routes := []struct {
		pattern string
		handler http.HandlerFunc
	}{
		{"POST /v1/sites", a.createSite},
		{"GET /v1/sites", a.listSites},
		{"GET /v1/sites/{site}", a.getSite},
		{"PATCH /v1/sites/{site}", a.updateSite},
		{"DELETE /v1/sites/{site}", a.deleteSite},
		{"POST /v1/sites/{site}/deploys", a.createDeploy},
		{"GET /v1/sites/{site}/deploys", a.listDeploys},
		{"GET /v1/deploys/{id}", a.getDeploy},
		{"POST /v1/deploys/{id}/finalize", a.finalize},
		{"POST /v1/deploys/{id}/publish", a.publish},
		{"PUT /v1/blobs/{hash}", a.putBlob},
	}
	for _, r := range routes {
		mux.Handle(r.pattern, a.RequireAuth(r.handler))
	}
}

// RequireAuth lets a request through when it carries
// "Authorization: Bearer <token>" with the configured AdminToken or a token
// whose SHA-256 (hex) is the cluster's recorded hash; otherwise it answers
// 401 with WWW-Authenticate. Both comparisons take constant time. With no
// token configured anywhere every request is refused: an unconfigured
// cluster is closed, not open.
func (a *API) RequireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="atoll"`)
			WriteError(w, http.StatusUnauthorized, "missing token: send the admin token as \"Authorization: Bearer <token>\"")
			return
		}
		if !a.tokenOK(token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="atoll", error="invalid_token"`)
			WriteError(w, http.StatusUnauthorized, "invalid token: check --token / ATOLL_TOKEN against the cluster's admin token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *API) tokenOK(token string) bool {
	ok := false
	if a.cfg.AdminToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(a.cfg.AdminToken)) == 1 {
		ok = true
	}
	if want := a.meta.AdminTokenHash(); want != "" {
		sum := sha256.Sum256([]byte(token))
		got := hex.EncodeToString(sum[:])
		if subtle.ConstantTimeCompare([]byte(got), []byte(strings.ToLower(want))) == 1 {
			ok = true
		}
	}
	return ok
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
	WriteJSON(w, status, ErrorResponse{Error: msg})
}

// apiError is an error with the status and body the API answers it with.
type apiError struct {
	status int
	body   ErrorResponse
}

func (e *apiError) Error() string { return e.body.Error }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, body: ErrorResponse{Error: fmt.Sprintf(format, args...)}}
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
	case errors.As(err, &mbe):
		status, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than the limit of %d bytes", mbe.Limit)
	case errors.Is(err, raft.ErrNotLeader):
		status, msg = http.StatusServiceUnavailable, "the cluster has no leader right now; retry in a moment"
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, raft.ErrNotFound), errors.Is(err, blobstore.ErrNotFound):
		status, msg = http.StatusNotFound, err.Error()
	case errors.Is(err, raft.ErrExists), errors.Is(err, raft.ErrConflict):
		status, msg = http.StatusConflict, err.Error()
	case errors.Is(err, raft.ErrInvalid), errors.Is(err, blobstore.ErrHashMismatch), errors.Is(err, blobstore.ErrInvalidHash):
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
