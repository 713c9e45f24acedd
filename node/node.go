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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	atollacme "github.com/atoll-hosting/atoll/acme"

	"github.com/caddyserver/certmagic"

	"github.com/atoll-hosting/atoll"

	"golang.org/x/sync/singleflight"

	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/internal/durable"
	"github.com/atoll-hosting/atoll/listen"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/pki"
	"github.com/atoll-hosting/atoll/placement"
	"github.com/atoll-hosting/atoll/raft"
	"github.com/atoll-hosting/atoll/repair"
	"github.com/atoll-hosting/atoll/scrub"
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
	Role       string // atoll.RoleCore or atoll.RoleEdge
	RaftAddr   string // host:port Raft listens on and advertises
	APIAddr    string // host:port of the builder/admin API
	HTTPAddr   string // host:port of the edge
	Bootstrap  bool   // start a new cluster when the data dir holds no state
	Join       string // API URL of a running node to join through
	Domain     string // sites answer at <site>.<Domain>
	Replicas   int
	AdminToken string // seeds the replicated admin token at bootstrap; never written after
	ClusterKey string // shared secret of peer traffic; empty disables it (single node only)
	Version    string

	// FeedFrom, on a new edge, is the API URL of the node whose log it
	// follows as a fed edge instead of joining Raft (feed.go); it joins
	// through it when Join is empty.
	FeedFrom string
	// MaxDirectEdges is, on the leader, the number of edges kept as Raft
	// non-voters it feeds itself: a new edge joining with Join beyond
	// those becomes a fed edge of the relay with the fewest fed edges
	// (assign.go).
	MaxDirectEdges int

	// CacheSize bounds the bytes of blobs this node keeps without owning
	// them (read-through and prefetched copies); the least recently served
	// go first.
	CacheSize int64
	// EdgeIndexMemory bounds the memory of the edge's indexes of large
	// live deploys (serve.Config.IndexBytes); 0 means none.
	EdgeIndexMemory int64
	// EdgeIndexMinEntries: a live deploy with more manifest entries than
	// this gets an index (serve.Config.IndexMinEntries).
	EdgeIndexMinEntries int
	// RepairInterval is how often the repair pass runs besides on every
	// membership change.
	RepairInterval time.Duration
	// FetchTimeout bounds one attempt to fetch a blob from one peer before
	// the next is tried.
	FetchTimeout time.Duration
	// GCGrace is how long a blob no deploy references is kept.
	GCGrace time.Duration
	// DeployExpiry is how long a deploy may stay uploading: the leader
	// fails it after that (expire.go).
	DeployExpiry time.Duration
	// RaftTimeout is Raft's heartbeat and election timeout: how long
	// followers wait for a silent leader before electing another. Zero
	// keeps raft.DefaultConfig's.
	RaftTimeout time.Duration

	// Cluster mutual TLS (tls.go): this node's certificate and key and the
	// cluster CA, PEM files; all three or none. With them, Raft and every
	// API call between nodes run on mutual TLS, and the API serves HTTPS.
	TLSCert, TLSKey, TLSCA string
	// HTTPSAddr is the host:port of the edge's HTTPS listener; empty means
	// none. Certificates are chosen by SNI among those uploaded for custom
	// domains (edgetls.go), else HTTPSCert/HTTPSKey (PEM files, optional).
	HTTPSAddr           string
	HTTPSCert, HTTPSKey string
	// ACME (acme.go): with an HTTPS listener, certificates for every
	// custom domain (and, with ACMESiteHosts, every site host) are ordered
	// from the ACME directory ACMECA, trusting ACMECARoot (a PEM file) too
	// when set, for account ACMEEmail (optional). ACMERenewCheck is how
	// often each node looks for certificates to renew (renewal starts when
	// a third of the lifetime is left).
	ACME                          bool
	ACMECA, ACMECARoot, ACMEEmail string
	ACMESiteHosts                 bool
	ACMERenewCheck                time.Duration

	// Limits of the builder API; zero values take builder.DefaultConfig's.
	MaxBlobBytes int64
	MaxTarBytes  int64
	MaxJSONBytes int64 // a JSON request body, such as a deploy's manifest
	MaxFiles     int   // files in one deploy, unless the site has its own limit
	// Per-site limits, unless the site has its own (atoll.Site): the
	// identity bytes of one deploy and the deploys uploading at once.
	SiteMaxBytes     int64
	SiteMaxUploading int

	// HTTPLimits are the API's and the edge's timeouts and header limits
	// (limits.go).
	HTTPLimits

	// ScrubRate bounds how fast the scrubber reads blobs back to check
	// them, in bytes per second; a full background pass starts every
	// ScrubInterval (package scrub).
	ScrubRate     int64
	ScrubInterval time.Duration
	// MinFreeBytes is the disk space the blob store leaves free: uploads
	// and copies from peers are refused (HTTP 507) below it, so that the
	// Raft log and state beside the blobs still have room. 0 only guards
	// against a disk that is completely full.
	MinFreeBytes int64
	// CompressWorkers is blobstore.Config.CompressWorkers: the background
	// workers that make the compressed variants of new blobs (0: half the
	// CPUs; negative: none, blobs are served uncompressed).
	CompressWorkers int
	// EdgeNetIO has the plain-HTTP edge read and write through Go's net
	// package instead of raw system calls (serve.Conn).
	EdgeNetIO bool
	// VariantsWait is how long an owner of a new blob that is not the one
	// compressing it for the cluster waits for the variants that owner
	// sends, before compressing its own copy (variants.go). 0 or negative:
	// every owner compresses its own copy.
	VariantsWait time.Duration
	// Raft snapshot tuning, for tests that want frequent snapshots; zero
	// keeps raft.DefaultConfig's.
	RaftSnapshotThreshold uint64
	RaftSnapshotInterval  time.Duration
	RaftTrailingLogs      uint64
	RaftSnapshotBytes     int64

	// MetricsSiteLabels exports the edge's per-site counters as
	// Prometheus series labelled by site (one pair per site: small
	// installations only); without it they are only summed by `atoll site
	// stats`.
	MetricsSiteLabels bool
	// AccessLog is where the edge writes one JSON line per request
	// (serve.AccessLog): a file path, "-" for standard output, "" for
	// none. ReopenAccessLog reopens the file.
	AccessLog string

	Logger *slog.Logger
	// TokenOut receives the one-time notice that an admin token was
	// generated, and where it was saved; never the token itself.
	TokenOut io.Writer
}

// DefaultConfig returns the documented defaults of `atoll server`.
func DefaultConfig() Config {
	limits := builder.DefaultConfig()
	return Config{
		DataDir:  "./atoll-data",
		Role:     atoll.RoleCore,
		RaftAddr: "127.0.0.1:7000",
		APIAddr:  "127.0.0.1:9090",
		HTTPAddr: "127.0.0.1:8080",
		Domain:   "localhost",
		Replicas: 3,
		Version:  atoll.Release,

		MaxDirectEdges: 32,

		CacheSize:           1 << 30,
		EdgeIndexMemory:     serve.DefaultIndexBytes,
		EdgeIndexMinEntries: serve.IndexMinEntries,
		RepairInterval:      5 * time.Minute,
		FetchTimeout:        3 * time.Second,
		GCGrace:             time.Hour,
		DeployExpiry:        time.Hour,

		ScrubRate:     32 << 20,
		ScrubInterval: 24 * time.Hour,
		MinFreeBytes:  1 << 30,
		VariantsWait:  2 * time.Minute,

		MaxBlobBytes: limits.MaxBlobBytes,
		MaxTarBytes:  limits.MaxTarBytes,
		MaxJSONBytes: limits.MaxJSONBytes,
		MaxFiles:     limits.MaxFiles,

		SiteMaxBytes:     limits.SiteMaxBytes,
		SiteMaxUploading: limits.SiteMaxUploading,

		HTTPLimits: DefaultHTTPLimits(),

		ACME:           true,
		ACMECA:         certmagic.LetsEncryptProductionCA,
		ACMERenewCheck: certmagic.DefaultRenewCheckInterval,
	}
}

// validate checks c and fills its defaults; nofile is the process's
// descriptor limit, which the edge's connection limits derive from.
func (c *Config) validate(nofile uint64) error {
	if c.DataDir == "" {
		return fmt.Errorf("%w: empty data dir", ErrConfig)
	}
	if c.ACMERenewCheck < 0 {
		return fmt.Errorf("%w: --acme-renew-check %v: must not be negative", ErrConfig, c.ACMERenewCheck)
	}
	if c.Role != atoll.RoleCore && c.Role != atoll.RoleEdge {
		return fmt.Errorf("%w: role %q: want core or edge", ErrConfig, c.Role)
	}
	for name, addr := range map[string]string{"raft-addr": c.RaftAddr, "api-addr": c.APIAddr, "http-addr": c.HTTPAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%w: --%s %q: %v", ErrConfig, name, addr, err)
		}
	}
	if c.ID != "" && !atoll.ValidSiteName(c.ID) {
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
	if c.Join != "" && c.ClusterKey == "" {
		return fmt.Errorf("%w: --join needs --cluster-key (the secret every node of the cluster shares)", ErrConfig)
	}
	if c.FeedFrom != "" && (c.Role != atoll.RoleEdge || c.ClusterKey == "" || c.Bootstrap) {
		return fmt.Errorf("%w: --feed-from is for an edge (--role edge) with --cluster-key, without --bootstrap", ErrConfig)
	}
	if c.MaxDirectEdges < 0 {
		return fmt.Errorf("%w: --max-direct-edges %d: want 0 or more", ErrConfig, c.MaxDirectEdges)
	}
	if c.CacheSize < 0 || c.EdgeIndexMemory < 0 || c.RepairInterval <= 0 || c.FetchTimeout <= 0 || c.GCGrace < 0 {
		return fmt.Errorf("%w: cache size, edge index memory, repair interval, fetch timeout and gc grace must be positive", ErrConfig)
	}
	if c.DeployExpiry == 0 {
		c.DeployExpiry = DefaultConfig().DeployExpiry
	}
	if c.DeployExpiry < 0 || c.SiteMaxBytes < 0 || c.SiteMaxUploading < 0 {
		return fmt.Errorf("%w: deploy expiry and site limits must be positive", ErrConfig)
	}
	if c.ScrubRate <= 0 || c.ScrubInterval <= 0 || c.MinFreeBytes < 0 {
		return fmt.Errorf("%w: scrub rate and interval must be positive, min free bytes not negative", ErrConfig)
	}
	var err error
	if c.HTTPLimits, err = c.HTTPLimits.withDefaults(nofile); err != nil {
		return err
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
	// edgeReady is edge once it exists, for the blob store's background
	// workers, which start before it (variantsMade); edgeUp is closed
	// then.
	edgeReady atomic.Pointer[serve.Handler]
	edgeUp    chan struct{}

	apiLn  net.Listener
	httpLn net.Listener

	// The listeners' guards (package listen) and the edge server's error
	// if it stopped, for readiness; the edge's connections that wait for
	// a request, which its HTTP and HTTPS listeners shed when descriptors
	// run out.
	acceptMu    sync.Mutex
	acceptors   []*listen.Listener
	edgeStopped atomic.Pointer[error]
	edgeWaiting *listen.Waiting

	api     *http.Server
	table   []builder.Route // every route of api, with its scope (routes.go)
	http    *fasthttp.Server
	started time.Time

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	peer     *peer.Client // calls to other nodes (peer)
	peerHTTP *http.Client // peer.RPC: calls other than blob transfers
	tls      *pki.Cluster // nil without cluster TLS; see tls.go

	httpsLn    net.Listener // the edge's HTTPS listener, nil without --https-addr
	acme       *acmeManager // nil without ACME (acme.go)
	acmeStore  *atollacme.Storage
	siteCerts  *certCache // certificates the HTTPS edge serves, by SNI
	sealWarned onceSet    // sealed certificate keys that did not open, logged once

	place   atomic.Pointer[placement.View]
	fetches singleflight.Group // one transfer per missing blob
	// relaying holds a token per blob relayed through memory (blobs.go).
	relaying chan struct{}
	// streaming holds a token per blob streamed to a visitor (stream.go).
	streaming chan struct{}
	staged    stagedCopies // small cache copies held in memory while written (fetch.go)

	confirmedMu sync.Mutex
	confirmed   map[string]struct{} // non-owned copies whose owners hold them; see cache.go
	evictWake   chan struct{}

	repair *repair.Repairer // see repair.go

	prefetched map[string]bool // deploys an edge has prefetched (watchState only)
	// publishCursor is where prefetchPublished reads the FSM's feed of
	// publishes next (watchState only).
	publishCursor raft.PublishCursor
	prefetches    prefetchQueue // deploys waiting for prefetchPublished's prefetch

	scrub *scrub.Scrubber // see scrub.go

	// binaries is the last census of the members' binaries (feature.go);
	// joined: this node joined before its store opened (assign.go).
	joined bool
	// memberMu serializes joins with the raise of the feature level.
	binaries atomic.Pointer[binaryCensus]
	memberMu sync.Mutex

	feed feedState // a fed edge's feeders (feed.go)

	removed atomic.Bool // this node knows it was removed from the cluster (watchRemoval)
	told    toldRemoved // a peer's proof that this node was removed (orphan.go)
	seen    lastSeen    // what each node last said of itself; see http.go
	// removedWake is closed, and replaced, whenever removed changes.
	removedWake atomic.Pointer[chan struct{}]

	metrics          *metrics         // metrics.go
	access           *serve.AccessLog // nil without Config.AccessLog
	gcBlobs, gcBytes atomic.Int64     // what garbage collection reclaimed (gcLocal)
	variants         variantsShipping // variants sent to the other owners (variants.go)

	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// Start opens the node's stores, joins or bootstraps the cluster and starts
// serving the API and the edge. It returns once all listeners are bound; the
// node may still be catching up (see /readyz).
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	nofile := listen.RaiseDescriptorLimit()
	if err := cfg.validate(nofile); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "node"),
		started:    time.Now(),
		edgeUp:     make(chan struct{}),
		peer:       peer.New(cfg.ClusterKey),
		confirmed:  make(map[string]struct{}),
		evictWake:  make(chan struct{}, 1),
		prefetched: make(map[string]bool),
		relaying:   make(chan struct{}, relaySlots),
		streaming:  make(chan struct{}, streamSlots),
		told:       toldRemoved{wake: make(chan struct{}, 1)},
		variants:   variantsShipping{slots: make(chan struct{}, variantsPushSlots)},
	}
	n.peer.Version = cfg.Version
	n.peerHTTP = n.peer.RPC // setupTLS puts it on the cluster's TLS
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.peer.Health = n.newPeerHealth()
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := n.setupTLS(); err != nil {
		return nil, err
	}
	if err := n.prepareDataDir(); err != nil {
		return nil, err
	}
	// Before the stores: Raft reports to the metrics sink from its start.
	if n.metrics, err = newMetrics(n); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if err := n.openStores(ctx); err != nil {
		return nil, err
	}
	n.refreshPlacement()
	if cfg.AccessLog != "" {
		if n.access, err = serve.NewAccessLog(serve.AccessLogConfig{Path: cfg.AccessLog, Logger: cfg.Logger}); err != nil {
			return nil, fmt.Errorf("--access-log: %w", err)
		}
	}
	if err := n.startAPI(); err != nil {
		return nil, err
	}
	if err := n.startEdge(); err != nil {
		return nil, err
	}
	if err := n.enterCluster(ctx); err != nil {
		return nil, err
	}
	for _, loop := range []func(){n.watchState, n.watchRemoval, n.askRemovalLoop, n.repairLoop, n.evictLoop, n.expireLoop, n.featureLoop, n.metricsLoop} {
		n.background(loop)
	}
	n.scrub.Start()
	n.log.Info("node started", "id", n.cfg.ID, "role", cfg.Role,
		"api", n.APIURL(), "edge", n.EdgeURL(), "raft", cfg.RaftAddr, "descriptor_limit", nofile,
		"edge_concurrency", n.cfg.EdgeConcurrency, "edge_max_conns_per_ip", n.cfg.EdgeMaxConnsPerIP)
	if fits, _ := edgeConnDefaults(nofile); nofile > 0 && n.cfg.EdgeConcurrency > fits {
		n.log.Warn("--edge-concurrency exceeds what the descriptor limit fits: the edge may run out of descriptors (it sheds idle connections and is not ready meanwhile)",
			"edge_concurrency", n.cfg.EdgeConcurrency, "fits", fits, "descriptor_limit", nofile)
	}
	return n, nil
}

// prepareDataDir creates the data dir, refuses one of a newer format
// than this binary knows (datadir.go) before changing anything, removes
// what interrupted writes left, settles the node id, upgrades an older
// format in place and empties the upload spool (tmp/).
func (n *Node) prepareDataDir() (err error) {
	dir := n.cfg.DataDir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	format, err := checkDataDirFormat(dir, n.cfg.Version)
	if err != nil {
		return err
	}
	if err := removeWriteLeftovers(dir); err != nil {
		return err
	}
	if n.cfg.ID, err = loadID(dir, n.cfg.ID); err != nil {
		return err
	}
	if format < DataDirFormat {
		if err := upgradeDataDir(dir, format); err != nil {
			return err
		}
		if format > 0 {
			n.log.Info("data dir upgraded in place: a binary of an older format no longer opens it", "dir", dir, "from", format, "to", DataDirFormat)
		}
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("clear spool dir: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		return fmt.Errorf("create spool dir: %w", err)
	}
	return nil
}

// openStores opens the blob store (blobs/) and the Raft store (raft/), and
// the parts built on them: scrub and repair.
func (n *Node) openStores(ctx context.Context) (err error) {
	cfg := n.cfg
	bcfg := blobstore.DefaultConfig()
	bcfg.Dir = filepath.Join(cfg.DataDir, "blobs")
	bcfg.Logger = cfg.Logger
	bcfg.MinFreeBytes = cfg.MinFreeBytes
	bcfg.OnVariants = n.variantsMade
	bcfg.OnCorrupt = n.corruptBeforeCompressing
	bcfg.CompressWorkers = cfg.CompressWorkers
	bcfg.VariantsWait = n.variantsWait
	if n.blobs, err = blobstore.New(bcfg); err != nil {
		return fmt.Errorf("open blob store: %w", err)
	}
	if n.scrub, err = n.newScrubber(); err != nil {
		return err
	}
	rcfg := raft.DefaultConfig()
	rcfg.ID = cfg.ID
	rcfg.Dir = filepath.Join(cfg.DataDir, "raft")
	rcfg.BindAddr = cfg.RaftAddr
	rcfg.Bootstrap = cfg.Bootstrap
	rcfg.TLS = n.tls.RaftConfig()
	if cfg.RaftTimeout > 0 {
		rcfg.HeartbeatTimeout = cfg.RaftTimeout
		rcfg.ElectionTimeout = cfg.RaftTimeout
		rcfg.LeaderLeaseTimeout = cfg.RaftTimeout / 2
	}
	rcfg.SnapshotThreshold, rcfg.SnapshotInterval, rcfg.TrailingLogs = cfg.RaftSnapshotThreshold, cfg.RaftSnapshotInterval, cfg.RaftTrailingLogs
	rcfg.SnapshotBytes = uint64(max(cfg.RaftSnapshotBytes, 0))
	rcfg.Logger = cfg.Logger
	fed, err := n.fedMode(ctx) // feed.go
	if err != nil {
		return err
	}
	if fed {
		n.store, err = raft.OpenFollower(rcfg)
	} else {
		n.store, err = raft.Open(rcfg)
	}
	if err != nil {
		return fmt.Errorf("open raft store: %w", err)
	}
	if n.repair, err = n.newRepairer(); err != nil {
		return err
	}
	return nil
}

// enterCluster takes the node into its cluster: on a restart it refreshes
// its record in the background; otherwise it bootstraps a new cluster,
// joins through --join, or waits in the background to be added by an
// operator.
func (n *Node) enterCluster(ctx context.Context) error {
	if n.store.Fed() {
		n.background(n.feedLoop) // feed.go
	}
	switch {
	case n.store.HasState():
		// The cluster already knows this node. Refresh its record
		// (addresses may have changed) once a leader is known, without
		// holding up the start.
		n.background(func() {
			ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
			defer cancel()
			if err := n.rejoin(ctx); err != nil && n.ctx.Err() == nil {
				n.log.Warn("refresh node record", "err", err)
			}
		})
	case n.cfg.Bootstrap:
		return n.initCluster(ctx)
	case n.joined: // an edge the leader assigned before its store opened (assign.go)
	case n.cfg.Join != "" || n.cfg.FeedFrom != "": // --feed-from joins through its node
		return n.join(ctx)
	default:
		n.log.Warn("no cluster state in the data dir: waiting to be added with 'atoll node join' (or start with --bootstrap or --join)")
		n.background(func() {
			if err := n.awaitJoin(); err != nil && n.ctx.Err() == nil {
				n.log.Warn("refresh node record", "err", err)
			}
		})
	}
	return nil
}

// background runs f in a goroutine that Close waits for.
func (n *Node) background(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// initCluster waits for this node to lead the cluster it just
// bootstrapped, then records itself in the node table, the replication
// factor and the admin token.
func (n *Node) initCluster(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := n.store.WaitForLeader(ctx); err != nil {
		return fmt.Errorf("wait for raft leader: %w", err)
	}
	if err := n.registerSelf(ctx, true); err != nil {
		return err
	}
	if err := n.apply(ctx, raft.SetReplicas{N: n.cfg.Replicas}); err != nil {
		return fmt.Errorf("record replicas: %w", err)
	}
	return n.ensureToken(ctx)
}

// awaitJoin waits until an operator adds this node to a cluster ('atoll
// node join'), then fills in the addresses the operator did not give.
func (n *Node) awaitJoin() error {
	if !n.awaitState(n.ctx, n.InNodeTable) {
		return nil
	}
	ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
	defer cancel()
	return n.registerSelf(ctx, false)
}

// rejoin runs after a restart: once a leader is known, it updates this
// node's record if its addresses changed, and checks the admin token it
// was given against the cluster's (checkToken).
func (n *Node) rejoin(ctx context.Context) error {
	if err := n.store.WaitForLeader(ctx); err != nil {
		return err
	}
	if err := n.registerSelf(ctx, false); err != nil {
		return err
	}
	return n.checkToken(ctx)
}

// registerSelf writes this node's record to the node table when its
// addresses changed. Without create, a node missing from the table (it was
// removed) is left out.
func (n *Node) registerSelf(ctx context.Context, create bool) error {
	nodes, err := n.store.Nodes()
	if err != nil {
		return err
	}
	self := n.self()
	for _, nd := range nodes {
		if nd.ID != self.ID {
			continue
		}
		// Keep what the cluster decided (joined time, draining, feeder).
		self.Joined, self.State, self.Feeder = nd.Joined, nd.State, nd.Feeder
		if nd == self {
			return nil
		}
		create = true
	}
	if !create {
		n.log.Warn("this node is not in the cluster's node table (removed?); it serves nothing new until it joins again")
		return nil
	}
	if err := n.apply(ctx, raft.PutNode{Node: self}); err != nil {
		return fmt.Errorf("record node: %w", err)
	}
	return nil
}

func (n *Node) self() atoll.Node {
	return atoll.Node{
		ID:       n.cfg.ID,
		Role:     n.cfg.Role,
		RaftAddr: n.cfg.RaftAddr,
		APIAddr:  n.apiLn.Addr().String(),
		HTTPAddr: n.httpLn.Addr().String(),
		State:    atoll.NodeActive,
		Joined:   time.Now().UTC(),
	}
}

// The admin token lives in the replicated state alone (its SHA-256):
// PUT /v1/admin-token rotates it cluster-wide. --admin-token (or the data
// dir's token file) only seeds it when the cluster has none, at bootstrap;
// a restart never writes it back, so a node restarted with an old token
// cannot undo a rotation.

// ensureToken seeds the replicated state's admin token hash when it has
// none. The token comes from --admin-token, else from the data dir's token
// file, else it is generated, written there with mode 0600 and announced
// once. The caller has made sure this node's state is current (it just
// bootstrapped it, or checkToken's barrier).
func (n *Node) ensureToken(ctx context.Context) error {
	if n.store.AdminTokenHash() != "" {
		return nil
	}
	token, err := n.givenToken()
	if err != nil {
		return err
	}
	if token == "" {
		if token, err = newToken(); err != nil {
			return err
		}
		path := n.tokenPath()
		if err := durable.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
			return fmt.Errorf("write admin token: %w", err)
		}
		// The token itself goes nowhere but the file: this output usually
		// ends up in a log.
		fmt.Fprintf(n.cfg.TokenOut, "atoll: generated an admin token, saved in %s (readable by this user only)\n", path)
	}
	if err := n.apply(ctx, raft.SetAdminToken{Hash: tokenHash(token)}); err != nil {
		return fmt.Errorf("record admin token: %w", err)
	}
	return nil
}

// checkToken runs after a restart. Once this node's state is current, a
// cluster without an admin token (its bootstrap stopped before recording
// one) is seeded by its bootstrap node when that node leads; a token given
// to this node (--admin-token, the token file) that is not the cluster's
// is ignored with a warning: the cluster's token was rotated since.
func (n *Node) checkToken(ctx context.Context) error {
	if err := n.catchUp(ctx); err != nil {
		return fmt.Errorf("catch up before checking the admin token: %w", err)
	}
	want := n.store.AdminTokenHash()
	if want == "" {
		if n.cfg.Bootstrap && n.store.IsLeader() {
			return n.ensureToken(ctx)
		}
		return nil
	}
	token, err := n.givenToken()
	if err != nil || token == "" {
		return err
	}
	if tokenHash(token) != want {
		n.log.Warn("the admin token this node was given (--admin-token, --admin-token-file or <data>/token) is not the cluster's: it was rotated since; the given one is ignored and refused",
			"token_file", n.tokenPath())
	}
	return nil
}

// catchUp waits until this node has applied what the cluster had committed
// when it was called: on the leader a Raft barrier; on a follower, the
// leader's commit index.
func (n *Node) catchUp(ctx context.Context) error {
	if n.store.IsLeader() {
		return n.store.Barrier(ctx)
	}
	leader, ok := n.nodeByID(n.store.LeaderID())
	if !ok {
		return fmt.Errorf("%w: leader %q not in the node table", ErrNoLeader, n.store.LeaderID())
	}
	st, err := n.peer.Stats(ctx, n.peerURL(leader.APIAddr))
	if err != nil {
		return err
	}
	return n.store.WaitApplied(ctx, st.CommitIndex)
}

// givenToken returns the admin token this node was given: --admin-token,
// else the data dir's token file, else "".
func (n *Node) givenToken() (string, error) {
	if n.cfg.AdminToken != "" {
		return n.cfg.AdminToken, nil
	}
	b, err := os.ReadFile(n.tokenPath())
	switch {
	case err == nil:
		return strings.TrimSpace(string(b)), nil
	case errors.Is(err, os.ErrNotExist):
		return "", nil
	}
	return "", fmt.Errorf("read admin token: %w", err)
}

// rewriteTokenFile is builder.Config.AdminTokenRotated: after a rotation
// through this node, the data dir's token file, if there is one (a node
// that generated its token at bootstrap; what `atoll` run beside it reads),
// holds the new token. Other nodes' token files keep the old one, which
// their next restart reports (checkToken).
func (n *Node) rewriteTokenFile(token string) error {
	path := n.tokenPath()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return durable.WriteFile(path, []byte(token+"\n"), 0o600)
}

func (n *Node) tokenPath() string { return filepath.Join(n.cfg.DataDir, "token") }

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
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
	if err := durable.WriteFile(path, []byte(want+"\n"), 0o640); err != nil {
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

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// Store returns the node's Raft store.
func (n *Node) Store() *raft.Store { return n.store }

// LocalBlobs returns the node's local blob store.
func (n *Node) LocalBlobs() *blobstore.Store { return n.blobs }

// Routes returns the table of the API listener's routes (routes.go), with
// their scopes: what a security review reads, and what tests walk to
// check every guard.
func (n *Node) Routes() []builder.Route { return slices.Clone(n.table) }

// InNodeTable reports whether the replicated node table lists this node.
func (n *Node) InNodeTable() bool {
	_, ok := n.nodeByID(n.cfg.ID)
	return ok
}

// Owners returns the ids of the nodes that own hash, best first.
func (n *Node) Owners(hash string) []string {
	var ids []string
	for _, o := range n.placement().Owners(hash) {
		ids = append(ids, o.ID)
	}
	return ids
}

// APIURL returns the base URL of the node's API.
func (n *Node) APIURL() string { return n.peerURL(n.apiLn.Addr().String()) }

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
	n.closeOnce.Do(n.close)
	return n.closeErr
}

// Shutdown stops the node the polite way: a leader with other voters
// hands leadership over first, so writes resume without waiting for an
// election timeout; then it closes like Close.
func (n *Node) Shutdown() error {
	if n.store != nil && n.store.IsLeader() {
		if servers, err := n.store.Servers(); err == nil && countVoters(servers) > 1 {
			if err := n.store.LeadershipTransfer(); err != nil {
				n.log.Warn("hand leadership over before shutdown", "err", err)
			}
		}
	}
	return n.Close()
}

func countVoters(servers []raft.Server) int {
	v := 0
	for _, s := range servers {
		if s.Voter {
			v++
		}
	}
	return v
}

func (n *Node) close() {
	n.cancel()
	var errs []error
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n.api != nil {
		errs = append(errs, n.api.Shutdown(ctx))
	} else if n.apiLn != nil {
		n.apiLn.Close() // bound, not served yet (bindListeners)
	}
	if n.http == nil && n.httpLn != nil {
		n.httpLn.Close()
	}
	if n.http != nil {
		// The HTTPS listener may be closed already (watchCerts closes it
		// once the node's context ends): the server still waits for the
		// connections it serves, and the stop is clean.
		if err := n.http.ShutdownWithContext(ctx); !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
		// fasthttp closes only the listeners Serve has registered: a
		// Close right after Start could come first and leave Serve
		// accepting forever.
		n.httpLn.Close()
	}
	if n.httpsLn != nil {
		n.httpsLn.Close() // also when the edge failed to start after binding it
	}
	n.wg.Wait()
	if n.access != nil {
		errs = append(errs, n.access.Close()) // after the edge: no more lines
	}
	n.peer.Health.Close()
	if n.scrub != nil {
		n.scrub.Close()
	}
	if n.blobs != nil {
		errs = append(errs, n.blobs.Close())
	}
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	n.closeErr = errors.Join(errs...)
	n.log.Info("node stopped", "id", n.cfg.ID)
}

// removeWriteLeftovers removes the temp files of durable.WriteFile calls in
// dir that a crash cut short (".token.tmp123"): the file they were to
// replace is intact, and nothing else in a data dir is named so.
func removeWriteLeftovers(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, ".*.tmp*"))
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := os.Remove(name); err != nil {
			return fmt.Errorf("remove a leftover of an interrupted write: %w", err)
		}
	}
	return nil
}
