// Package buildertest runs the builder API for the tests of builder,
// builder/client and anything above them, over the real replicated store:
// Meta is a single-node raft.Store (raft/rafttest) in the test's temp dir,
// so every request meets the FSM's own rules (names, domains, deploy
// states, manifest completeness, retention, tokens, certificates). Blobs
// keeps blobs as files named by their hash in a folder and counts the
// uploads that stored something new. Both are safe for concurrent use.
// Its functions take a rafttest.TB: a *testing.T, or an Example's own.
//
// It holds no rules of its own: what the cluster accepts is decided by
// raft's FSM and the builder API, never here.
package buildertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/raft"
	"github.com/atoll-hosting/atoll/raft/rafttest"
)

var (
	_ builder.Meta     = (*Meta)(nil)
	_ builder.CertMeta = (*Meta)(nil)
	_ builder.Blobs    = (*Blobs)(nil)
)

// Meta is a single-node raft.Store, whose read methods it promotes, with
// a hook in front of Apply for tests that inject a failure or watch the
// commands go by.
type Meta struct {
	*raft.Store
	mu     sync.Mutex
	before func(raft.Command) error
}

// NewMeta opens a single-node store (rafttest.Open) that records the hash
// of Token as the cluster's admin token, as a real cluster would.
func NewMeta(t rafttest.TB) *Meta {
	t.Helper()
	s := rafttest.Open(t)
	rafttest.Apply(t, s, raft.SetAdminToken{Hash: hashOf(Token)})
	return &Meta{Store: s}
}

// BeforeApply makes Apply call f with each command first: a non-nil result
// is returned instead, and the command never reaches the log. Nil removes
// the hook.
func (m *Meta) BeforeApply(f func(raft.Command) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.before = f
}

// Apply implements builder.Meta: the hook, then the real store.
func (m *Meta) Apply(ctx context.Context, cmd raft.Command) error {
	m.mu.Lock()
	before := m.before
	m.mu.Unlock()
	if before != nil {
		if err := before(cmd); err != nil {
			return err
		}
	}
	return m.Store.Apply(ctx, cmd)
}

// State renders everything a reader of the store can see (rafttest.Dump),
// for before/after comparisons.
func (m *Meta) State(t rafttest.TB) string {
	t.Helper()
	return rafttest.Dump(t, m.Store.FSM)
}

// Blobs is a folder-backed builder.Blobs: each blob is a file named by its
// hash.
type Blobs struct {
	dir string
	mu  sync.Mutex
	// puts counts Put calls that stored new content.
	puts int
}

// NewBlobs returns a Blobs keeping its files in dir, which must exist.
func NewBlobs(dir string) *Blobs { return &Blobs{dir: dir} }

// Put implements builder.Blobs.
func (b *Blobs) Put(ctx context.Context, want string, r io.Reader) (blobstore.Info, error) {
	if want != "" && !atoll.ValidHash(want) {
		return blobstore.Info{}, fmt.Errorf("put blob %q: %w", want, blobstore.ErrInvalidHash)
	}
	tmp, err := os.CreateTemp(b.dir, ".put-*")
	if err != nil {
		return blobstore.Info{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err != nil {
		return blobstore.Info{}, fmt.Errorf("put blob: read body: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return blobstore.Info{}, err
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want != "" && got != want {
		return blobstore.Info{}, fmt.Errorf("put blob: got %s, want %s: %w", got, want, blobstore.ErrHashMismatch)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	dst := filepath.Join(b.dir, got)
	if _, err := os.Stat(dst); err == nil {
		return blobstore.Info{Hash: got, Size: n}, nil
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return blobstore.Info{}, err
	}
	b.puts++
	return blobstore.Info{Hash: got, Size: n}, nil
}

// StatMany implements builder.Blobs.
func (b *Blobs) StatMany(ctx context.Context, hashes []string) (map[string]blobstore.Info, error) {
	out := make(map[string]blobstore.Info)
	for _, h := range hashes {
		if info, err := b.Stat(ctx, h); err == nil {
			out[h] = info
		}
	}
	return out, ctx.Err()
}

// Stat implements builder.Blobs.
func (b *Blobs) Stat(ctx context.Context, hash string) (blobstore.Info, error) {
	if !atoll.ValidHash(hash) {
		return blobstore.Info{}, fmt.Errorf("stat blob %q: %w", hash, blobstore.ErrInvalidHash)
	}
	fi, err := os.Stat(filepath.Join(b.dir, hash))
	if err != nil {
		return blobstore.Info{}, fmt.Errorf("stat blob %s: %w", hash, blobstore.ErrNotFound)
	}
	return blobstore.Info{Hash: hash, Size: fi.Size()}, nil
}

// Open implements builder.Blobs: identity bytes only.
func (b *Blobs) Open(ctx context.Context, hash, encoding string) (*os.File, int64, error) {
	if !atoll.ValidHash(hash) || encoding != "" {
		return nil, 0, fmt.Errorf("open blob %q %q: %w", hash, encoding, blobstore.ErrNotFound)
	}
	f, err := os.Open(filepath.Join(b.dir, hash))
	if err != nil {
		return nil, 0, fmt.Errorf("open blob %s: %w", hash, blobstore.ErrNotFound)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// Hashes lists the stored blobs, sorted.
func (b *Blobs) Hashes() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	ents, _ := os.ReadDir(b.dir)
	var out []string
	for _, e := range ents {
		if atoll.ValidHash(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// Lose removes a stored blob, as a node that lost its copy would.
func (b *Blobs) Lose(hash string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return os.Remove(filepath.Join(b.dir, hash))
}

// Puts reports how many Put calls stored new content.
func (b *Blobs) Puts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.puts
}

// Token is the admin token of servers made by NewServer.
const Token = "test-admin-token"

// Server is the builder API on a real loopback listener, over a Meta and
// a Blobs.
type Server struct {
	*httptest.Server
	API   *builder.API
	Meta  *Meta
	Blobs *Blobs
}

// NewServer starts the API with cfg over NewMeta and a Blobs in a temp
// folder (see Start).
func NewServer(t rafttest.TB, cfg builder.Config) *Server {
	t.Helper()
	return Start(t, cfg, NewMeta(t), NewBlobs(t.TempDir()))
}

// Start starts the API with cfg over meta and blobs, and closes it when
// the test ends. Zero fields of cfg take builder's defaults, TempDir a
// t.TempDir(), Domain "localhost" and SiteURL "http://<host>:8080/". The
// admin token is Token. Several servers may share one meta and blobs, as
// the nodes of a cluster share its state.
func Start(t rafttest.TB, cfg builder.Config, meta *Meta, blobs *Blobs) *Server {
	t.Helper()
	if cfg.TempDir == "" {
		cfg.TempDir = t.TempDir()
	}
	if cfg.Domain == "" {
		cfg.Domain = "localhost"
	}
	if cfg.SiteURL == nil {
		cfg.SiteURL = func(host string) string { return "http://" + host + ":8080/" }
	}
	api, err := builder.New(cfg, meta, blobs)
	if err != nil {
		t.Fatalf("builder.New: %v", err)
	}
	return &Server{Server: Serve(t, api), API: api, Meta: meta, Blobs: blobs}
}

// Serve starts api on a loopback listener, closed when the test ends.
func Serve(t rafttest.TB, api *builder.API) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
