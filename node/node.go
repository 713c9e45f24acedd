package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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
	"time"

	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/raft"
	"github.com/atoll-hosting/atoll/serve"
)

// Sentinel errors.
var (
	ErrConfig   = errors.New("invalid configuration")
	ErrIDChange = errors.New("node id differs from the one in the data directory")
)

// Config is everything a node needs to start. Start from DefaultConfig.
type Config struct {
	ID         string // node id; generated and stored in the data dir when empty
	DataDir    string
	Role       string // raft.RoleCore or raft.RoleEdge
	RaftAddr   string // host:port Raft listens on and advertises
	APIAddr    string // host:port of the builder/admin API
	HTTPAddr   string // host:port of the edge
	Bootstrap  bool   // start a new cluster when the data dir holds no state
	Join       string // API URL of a running node to join through
	Domain     string // sites answer at <site>.<Domain>
	Replicas   int
	AdminToken string // accepted in addition to the replicated token hash
	Version    string

	// Limits of the builder API; zero values take builder.DefaultConfig's.
	MaxBlobBytes int64
	MaxTarBytes  int64

	Logger *slog.Logger
	// TokenOut receives the one-time notice of a generated admin token.
	TokenOut io.Writer
}

// DefaultConfig returns the documented defaults of `atoll server`.
func DefaultConfig() Config {
	return Config{
		DataDir:  "./atoll-data",
		Role:     raft.RoleCore,
		RaftAddr: "127.0.0.1:7000",
		APIAddr:  "127.0.0.1:9090",
		HTTPAddr: "127.0.0.1:8080",
		Domain:   "localhost",
		Replicas: 3,
		Version:  "dev",
	}
}

func (c *Config) validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("%w: empty data dir", ErrConfig)
	}
	if c.Role != raft.RoleCore && c.Role != raft.RoleEdge {
		return fmt.Errorf("%w: role %q: want core or edge", ErrConfig, c.Role)
	}
	for name, addr := range map[string]string{"raft-addr": c.RaftAddr, "api-addr": c.APIAddr, "http-addr": c.HTTPAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%w: --%s %q: %v", ErrConfig, name, addr, err)
		}
	}
	if c.ID != "" && !raft.ValidSiteName(c.ID) {
		return fmt.Errorf("%w: node id %q: use 1-63 of [a-z0-9-]", ErrConfig, c.ID)
	}
	if c.Domain == "" || strings.ContainsAny(c.Domain, ":/ ") {
		return fmt.Errorf("%w: domain %q", ErrConfig, c.Domain)
	}
	if c.Replicas < 1 {
		return fmt.Errorf("%w: replicas %d: want at least 1", ErrConfig, c.Replicas)
	}
	if c.Bootstrap && c.Join != "" {
		return fmt.Errorf("%w: --bootstrap and --join exclude each other", ErrConfig)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TokenOut == nil {
		c.TokenOut = io.Discard
	}
	return nil
}

// Node is one running Atoll node.
type Node struct {
	cfg   Config
	log   *slog.Logger
	blobs *blobstore.Store
	store *raft.Store
	edge  *serve.Handler

	apiLn   net.Listener
	httpLn  net.Listener
	api     *http.Server
	http    *fasthttp.Server
	started time.Time

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// Start opens the node's stores, joins or bootstraps the cluster and starts
// serving the API and the edge. It returns once all listeners are bound; the
// node may still be catching up (see /readyz).
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("component", "node"), started: time.Now()}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if n.cfg.ID, err = loadID(cfg.DataDir, cfg.ID); err != nil {
		return nil, err
	}
	tmp := filepath.Join(cfg.DataDir, "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("clear spool dir: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		return nil, fmt.Errorf("create spool dir: %w", err)
	}

	bcfg := blobstore.DefaultConfig()
	bcfg.Dir = filepath.Join(cfg.DataDir, "blobs")
	bcfg.Logger = cfg.Logger
	if n.blobs, err = blobstore.New(bcfg); err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}

	rcfg := raft.DefaultConfig()
	rcfg.ID = n.cfg.ID
	rcfg.Dir = filepath.Join(cfg.DataDir, "raft")
	rcfg.BindAddr = cfg.RaftAddr
	rcfg.Bootstrap = cfg.Bootstrap
	rcfg.Logger = cfg.Logger
	if n.store, err = raft.Open(rcfg); err != nil {
		return nil, fmt.Errorf("open raft store: %w", err)
	}

	if err := n.startAPI(); err != nil {
		return nil, err
	}
	if err := n.startEdge(); err != nil {
		return nil, err
	}
	switch {
	case cfg.Bootstrap:
		if err := n.initCluster(ctx); err != nil {
			return nil, err
		}
	case n.store.HasState():
		// A restart: the node table and token are already replicated; refresh
		// this node's own record (its addresses may have changed) once a
		// leader is known, without holding up the start.
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
			defer cancel()
			if err := n.initCluster(ctx); err != nil && n.ctx.Err() == nil {
				n.log.Warn("refresh node record", "err", err)
			}
		}()
	default:
		n.log.Warn("no cluster state in the data dir: start with --bootstrap to create a cluster, or --join to join one")
	}
	n.log.Info("node started", "id", n.cfg.ID, "role", cfg.Role,
		"api", n.APIURL(), "edge", n.EdgeURL(), "raft", cfg.RaftAddr)
	return n, nil
}

// initCluster waits for this node to lead the cluster it bootstrapped, then
// records itself in the node table and makes sure an admin token exists.
// Both steps are idempotent, so a restart repeats them harmlessly.
func (n *Node) initCluster(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n.store.WaitForLeader(ctx); err != nil {
		return fmt.Errorf("wait for raft leader: %w", err)
	}
	if !n.store.IsLeader() {
		return nil // an existing cluster elected someone else: it already holds this state
	}
	if err := n.registerSelf(ctx); err != nil {
		return err
	}
	return n.ensureToken(ctx)
}

func (n *Node) registerSelf(ctx context.Context) error {
	nodes, err := n.store.Nodes()
	if err != nil {
		return err
	}
	self := n.self()
	for _, nd := range nodes {
		if nd.ID == self.ID && nd.RaftAddr == self.RaftAddr && nd.APIAddr == self.APIAddr &&
			nd.HTTPAddr == self.HTTPAddr && nd.Role == self.Role && nd.State == self.State {
			return nil
		}
		if nd.ID == self.ID {
			self.Joined = nd.Joined
		}
	}
	if err := n.store.Apply(ctx, raft.PutNode{Node: self}); err != nil {
		return fmt.Errorf("record node: %w", err)
	}
	return nil
}

func (n *Node) self() raft.Node {
	return raft.Node{
		ID:       n.cfg.ID,
		Role:     n.cfg.Role,
		RaftAddr: n.cfg.RaftAddr,
		APIAddr:  n.apiLn.Addr().String(),
		HTTPAddr: n.httpLn.Addr().String(),
		State:    raft.NodeActive,
		Joined:   time.Now().UTC(),
	}
}

// ensureToken makes sure the replicated state holds an admin token hash. The
// token comes from --admin-token, else from the data dir's token file, else
// it is generated, written there with mode 0600 and announced once.
func (n *Node) ensureToken(ctx context.Context) error {
	token := n.cfg.AdminToken
	path := filepath.Join(n.cfg.DataDir, "token")
	if token == "" {
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			token = strings.TrimSpace(string(b))
		case errors.Is(err, os.ErrNotExist):
			if n.store.AdminTokenHash() != "" {
				return nil // the cluster has a token; this node was not given it
			}
			if token, err = newToken(); err != nil {
				return err
			}
			if err := writeFileSync(path, []byte(token+"\n"), 0o600); err != nil {
				return fmt.Errorf("write admin token: %w", err)
			}
			fmt.Fprintf(n.cfg.TokenOut, "atoll: generated admin token %s (saved in %s)\n", token, path)
		default:
			return fmt.Errorf("read admin token: %w", err)
		}
	}
	sum := sha256.Sum256([]byte(token))
	hash := hex.EncodeToString(sum[:])
	if n.store.AdminTokenHash() == hash {
		return nil
	}
	if err := n.store.Apply(ctx, raft.SetAdminToken{Hash: hash}); err != nil {
		return fmt.Errorf("record admin token: %w", err)
	}
	return nil
}

func newToken() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return "atl_" + hex.EncodeToString(b[:]), nil
}

// loadID returns the node id stored in dir, storing want (or a generated id)
// on first start. A different non-empty want is refused: a data dir belongs
// to one node.
func loadID(dir, want string) (string, error) {
	path := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		have := strings.TrimSpace(string(b))
		if want != "" && want != have {
			return "", fmt.Errorf("%w: data dir has %q, --id says %q", ErrIDChange, have, want)
		}
		return have, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("read node id: %w", err)
	}
	if want == "" {
		host, _ := os.Hostname()
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		want = sanitizeID(host) + "-" + hex.EncodeToString(b[:])
	}
	if err := writeFileSync(path, []byte(want+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("write node id: %w", err)
	}
	return want, nil
}

func sanitizeID(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else if b.Len() > 0 && !strings.HasSuffix(b.String(), "-") {
			b.WriteByte('-')
		}
		if b.Len() >= 40 {
			break
		}
	}
	out := strings.Trim(b.String(), "-")
	if out == "" {
		out = "node"
	}
	return out
}

// writeFileSync writes a small file atomically: temp file, fsync, rename,
// fsync of the directory.
func writeFileSync(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// Store returns the node's Raft store.
func (n *Node) Store() *raft.Store { return n.store }

// APIURL returns the base URL of the node's API.
func (n *Node) APIURL() string { return "http://" + n.apiLn.Addr().String() }

// EdgeURL returns the base URL of the node's edge.
func (n *Node) EdgeURL() string { return "http://" + n.httpLn.Addr().String() }

// SiteURL returns the edge URL at which host is served, e.g.
// http://demo.localhost:8080/.
func (n *Node) SiteURL(host string) string {
	_, port, _ := net.SplitHostPort(n.httpLn.Addr().String())
	if port == "80" {
		return "http://" + host + "/"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// Close stops serving and closes the stores. It is safe to call twice.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		var errs []error
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if n.api != nil {
			errs = append(errs, n.api.Shutdown(ctx))
		}
		if n.http != nil {
			errs = append(errs, n.http.ShutdownWithContext(ctx))
		}
		n.wg.Wait()
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
		n.closeErr = errors.Join(errs...)
		n.log.Info("node stopped", "id", n.cfg.ID)
	})
	return n.closeErr
}
