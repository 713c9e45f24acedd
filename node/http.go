package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"

	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/listen"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/raft"
	"github.com/atoll-hosting/atoll/serve"
)

// bindListeners binds the API and edge listeners, once: the API's and the
// edge's addresses are part of a join request, which a new edge sends
// before its store opens (assign.go).
func (n *Node) bindListeners() error {
	if n.apiLn != nil {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("listen on --api-addr: %w", err)
	}
	if n.httpLn, err = net.Listen("tcp", n.cfg.HTTPAddr); err != nil {
		ln.Close()
		return fmt.Errorf("listen on --http-addr: %w", err)
	}
	n.apiLn = ln
	return nil
}

// startAPI binds the API listener and serves on it the table of routes
// (routes.go): the builder API, the node's own admin routes, the peer
// protocol, profiles and probes.
func (n *Node) startAPI() error {
	if err := n.bindListeners(); err != nil {
		return err
	}
	ln := n.apiLn
	apiWaiting := listen.NewWaiting()
	ln = n.apiListener(n.newAcceptor(ln, "api", apiWaiting)) // outlasts running out of descriptors (package listen); TLS with cluster TLS (tls.go)

	bcfg := builder.DefaultConfig()
	bcfg.AdminTokenRotated = n.rewriteTokenFile
	if n.cfg.ClusterKey != "" {
		bcfg.SealCertKey = func(domain, keyPEM string) (string, error) {
			return raft.SealCertKey(n.cfg.ClusterKey, domain, keyPEM)
		}
	}
	bcfg.Domain = n.cfg.Domain
	bcfg.SiteURL = n.SiteURL
	bcfg.TempDir = filepath.Join(n.cfg.DataDir, "tmp")
	bcfg.Room = n.blobs.RoomFor            // the spool leaves --min-free too
	bcfg.RequireFeature = n.RequireFeature // feature.go
	bcfg.Logger = n.cfg.Logger
	bcfg.EdgeHTTPS = n.cfg.HTTPSAddr != ""
	bcfg.IssuedCerts = n.issuedCerts // acmestatus.go
	if n.cfg.MaxBlobBytes > 0 {
		bcfg.MaxBlobBytes = n.cfg.MaxBlobBytes
	}
	if n.cfg.MaxTarBytes > 0 {
		bcfg.MaxTarBytes = n.cfg.MaxTarBytes
	}
	if n.cfg.MaxJSONBytes > 0 {
		bcfg.MaxJSONBytes = n.cfg.MaxJSONBytes
	}
	if n.cfg.MaxFiles > 0 {
		bcfg.MaxFiles = n.cfg.MaxFiles
	}
	if n.cfg.SiteMaxBytes > 0 {
		bcfg.SiteMaxBytes = n.cfg.SiteMaxBytes
	}
	if n.cfg.SiteMaxUploading > 0 {
		bcfg.SiteMaxUploading = n.cfg.SiteMaxUploading
	}
	api, err := builder.New(bcfg, meta{n.store, n}, blobs{n})
	if err != nil {
		return fmt.Errorf("builder api: %w", err)
	}

	n.table = n.routes(api) // routes.go
	mux := http.NewServeMux()
	n.mount(mux, api, n.table)

	n.api = &http.Server{
		Handler:           paced(n.cfg.HTTPLimits, mux), // body deadlines, limits.go
		ReadHeaderTimeout: n.cfg.APIReadHeaderTimeout,
		IdleTimeout:       n.cfg.APIIdleTimeout,
		MaxHeaderBytes:    n.cfg.APIMaxHeaderBytes,
		ConnState:         apiWaiting.HTTPState,                               // to shed when descriptors run out (package listen)
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn), // e.g. TLS handshake errors
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.api.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("api server stopped", "err", err)
		}
	}()
	return nil
}

// startEdge binds the edge listener and serves published sites on it.
func (n *Node) startEdge() error {
	// The HTTPS listener is bound first: the handler redirects to its port.
	httpsPort, err := n.listenEdgeTLS()
	if err != nil {
		return err
	}
	scfg := serve.DefaultConfig()
	scfg.Domain = n.cfg.Domain
	scfg.Logger = n.cfg.Logger
	scfg.HTTPSPort = httpsPort
	scfg.Stats = n.metrics.edge
	scfg.IndexBytes = n.cfg.EdgeIndexMemory
	scfg.IndexMinEntries = n.cfg.EdgeIndexMinEntries
	if scfg.IndexBytes == 0 {
		scfg.IndexBytes = -1 // none
	}
	if n.access != nil {
		n.metrics.edge.SetAccessLog(n.access)
	}
	edge, err := serve.New(scfg, n.store, serveBlobs{blobs{n}})
	if err != nil {
		return fmt.Errorf("edge: %w", err)
	}
	n.edge = edge
	n.edgeReady.Store(edge)
	close(n.edgeUp)
	ln := n.httpLn
	if err := n.startACME(); err != nil { // acme.go
		return err
	}
	n.edgeWaiting = listen.NewWaiting()
	accept := n.newAcceptor(ln, "edge", n.edgeWaiting) // package listen
	n.http = &fasthttp.Server{
		Handler:                       n.unlessRemoved(refuseBody(n.acmeHTTP(edge.ServeHTTP))), // limits.go, acme.go
		ErrorHandler:                  edgeError,
		Name:                          "atoll",
		ReadTimeout:                   n.cfg.EdgeReadTimeout,
		WriteTimeout:                  n.cfg.EdgeWriteTimeout,
		IdleTimeout:                   n.cfg.EdgeIdleTimeout,
		ReadBufferSize:                n.cfg.EdgeMaxHeaderBytes, // also the header limit
		WriteBufferSize:               serve.DefaultWriteBufferSize,
		MaxRequestBodySize:            edgeMaxBodyBytes,
		Concurrency:                   n.cfg.EdgeConcurrency,
		ConnState:                     n.edgeWaiting.FasthttpState,
		Logger:                        newEdgeLogger(n.cfg.Logger), // no request bytes, rate-limited
		SecureErrorLogMessage:         true,
		DisableHeaderNamesNormalizing: false,
		NoDefaultDate:                 false,
		CloseOnShutdown:               true,
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		var ln net.Listener = accept
		if !n.cfg.EdgeNetIO {
			ln = serve.NewListener(accept, serve.DefaultWriteBufferSize) // raw reads and writes (serve/conn.go)
		}
		// Not fasthttp's MaxConnsPerIP: its wrapper loses sendfile (serve/perip.go).
		ln = serve.LimitPerIP(ln, n.cfg.EdgeMaxConnsPerIP)
		if err := n.http.Serve(ln); err != nil {
			n.edgeStopped.Store(&err)
			n.log.Error("edge server stopped", "err", err)
		}
	}()
	return n.startEdgeTLS()
}

// unlessRemoved answers 503 with ErrRemoved's one line instead of next
// once this node knows it was removed from the cluster: what it holds is
// no longer kept current.
func (n *Node) unlessRemoved(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if n.Removed() {
			ctx.Error(ErrRemoved.Error()+"\n", fasthttp.StatusServiceUnavailable)
			return
		}
		next(ctx)
	}
}

// meta implements builder.Meta: reads from the local replicated state,
// writes through the leader.
type meta struct {
	*raft.Store
	n *Node
}

var (
	_ builder.Meta         = meta{}
	_ serve.ChangeNotifier = (*raft.Store)(nil) // the edge caches what it reads
)

func (m meta) Apply(ctx context.Context, cmd raft.Command) error { return m.n.apply(ctx, cmd) }

func (n *Node) status(ctx context.Context) atoll.Status {
	st := atoll.Status{
		ID:           n.cfg.ID,
		Role:         n.cfg.Role,
		RaftState:    n.store.State(),
		LeaderID:     n.store.LeaderID(),
		AppliedIndex: n.store.AppliedIndex(),
		CommitIndex:  n.store.CommitIndex(),
		Version:      n.cfg.Version,
		Replicas:     n.placement().Replicas(),

		CompressPending: n.blobs.PendingCompression(),
		VariantsSent:    n.variants.sent.Load(),
	}
	cs := n.blobs.CompressStats()
	st.Compressed, st.VariantsReceived = cs.Compressed, cs.Accepted
	st.Sites = n.store.SiteCount()
	st.Nodes, st.LeaderCommit = n.nodeStatuses(ctx)
	st.FeatureLevel = n.store.FeatureLevel()
	if st.FeatureLevel < atoll.MaxFeatureLevel {
		st.FeatureHeldBy = n.binaries.Load().heldBy(atoll.MaxFeatureLevel) // the census nodeStatuses just took
	}
	for _, ns := range st.Nodes {
		if ns.ID == st.LeaderID {
			st.LeaderAddr = ns.APIAddr
		}
	}
	st.Repair = n.lastReport(ctx)
	return st
}

// lastReport returns the leader's last repair census, asking the leader
// when this node is not it.
func (n *Node) lastReport(ctx context.Context) *atoll.RepairReport {
	if n.store.IsLeader() {
		return n.repair.LastReport()
	}
	leader, ok := n.nodeByID(n.store.LeaderID())
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := n.peer.Stats(ctx, n.peerURL(leader.APIAddr))
	if err != nil || st.Repair == nil {
		return nil
	}
	return st.Repair
}

// nodeStatuses asks every node for its stats and returns the node table
// (nodeTable) and the leader's commit index each node's lag is measured
// from.
func (n *Node) nodeStatuses(ctx context.Context) ([]atoll.NodeStatus, uint64) {
	nodes := n.placement().All()
	stats := n.fanOutStats(ctx, nodes)
	n.noteBinaries(stats) // feature.go
	return n.nodeTable(nodes, stats)
}

// nodeTable is the node table with what each node says of itself in stats,
// and the leader's commit index (the highest any node gave) each node's lag
// is measured from. A node that does not answer keeps the indexes it last
// gave this node, so a frozen node shows how far behind it has fallen.
// GET /v1/status and the metrics' cluster view (atoll_node_up,
// atoll_node_lag_entries) both read it, so they say the same.
func (n *Node) nodeTable(nodes []atoll.Node, stats map[string]peer.Stats) ([]atoll.NodeStatus, uint64) {
	now := time.Now()
	commit := n.store.CommitIndex()
	for _, st := range stats {
		commit = max(commit, st.CommitIndex)
	}
	out := make([]atoll.NodeStatus, 0, len(nodes))
	for _, nd := range nodes {
		st := stats[nd.ID]
		ns := atoll.NodeStatus{
			Node:         nd,
			Suffrage:     suffrageOf(nd),
			RaftState:    st.RaftState,
			LastContact:  st.LastContact,
			Blobs:        st.Blobs,
			Bytes:        st.Bytes,
			AppliedIndex: st.AppliedIndex,
			CommitIndex:  st.CommitIndex,
			Lag:          -1,
			DiskLow:      st.DiskLow,
			Stopped:      st.Stopped,
		}
		if st.RaftState == unreachable {
			if last, ok := n.seen.get(nd.ID); ok {
				ns.AppliedIndex, ns.CommitIndex = last.applied, last.commit
				ns.LastSeen = now.Sub(last.at).Round(time.Second).String()
			}
		} else {
			n.seen.put(nd.ID, seenStats{applied: st.AppliedIndex, commit: st.CommitIndex, at: now})
			ns.Version, ns.FeatureLevel = st.Binary()
		}
		if ns.AppliedIndex > 0 || st.RaftState != unreachable {
			ns.Lag = int64(commit - min(commit, ns.AppliedIndex))
		}
		out = append(out, ns)
	}
	return out, commit
}

// lastSeen remembers, per node ID, the indexes a node last gave in its
// stats and when. The zero value is ready to use.
type lastSeen struct {
	mu sync.Mutex
	m  map[string]seenStats
}

type seenStats struct {
	applied, commit uint64
	at              time.Time
}

func (l *lastSeen) get(id string) (seenStats, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.m[id]
	return s, ok
}

func (l *lastSeen) put(id string, s seenStats) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string]seenStats)
	}
	l.m[id] = s
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	builder.WriteJSON(w, http.StatusOK, n.status(r.Context()))
}

func (n *Node) handleNodes(w http.ResponseWriter, r *http.Request) {
	nodes, _ := n.nodeStatuses(r.Context())
	builder.WriteJSON(w, http.StatusOK, atoll.NodeList{Nodes: nodes})
}

func (n *Node) handleHealth(w http.ResponseWriter, r *http.Request) {
	builder.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "id": n.cfg.ID})
}

// handleReady answers 200 once the node is a member of a cluster with a
// known leader and has applied everything the leader had committed, while
// its listeners accept connections.
func (n *Node) handleReady(w http.ResponseWriter, r *http.Request) {
	if why := n.notReady(r.Context(), true); why != "" {
		builder.WriteError(w, http.StatusServiceUnavailable, why)
		return
	}
	ready := map[string]any{"status": "ready", "applied_index": n.store.AppliedIndex()}
	if low := n.diskLow(); low != "" {
		// Still ready: it serves every site (spaceLow in space.go); only
		// new blobs go to other nodes.
		ready["degraded"] = low
	}
	builder.WriteJSON(w, http.StatusOK, ready)
}

// notReady says why the node is not ready, or "" if it is. With askLeader
// a follower asks the leader for its commit index (its own lags the
// leader's until the next heartbeat); without, it judges from local state
// alone, which is what a metrics scrape may afford: no network call.
func (n *Node) notReady(ctx context.Context, askLeader bool) string {
	if n.Removed() {
		return ErrRemoved.Error()
	}
	if err := n.store.StorageFailed(); err != nil {
		return err.Error()
	}
	leaderID := n.store.LeaderID()
	if leaderID == "" {
		return "no raft leader known"
	}
	if !n.InNodeTable() {
		return "not in the node table yet"
	}
	if n.store.AdminTokenHash() == "" {
		return "the cluster has no admin token yet"
	}
	if why := n.listenersNotAccepting(); why != "" {
		return why
	}
	commit := n.store.CommitIndex()
	if leaderID != n.cfg.ID && askLeader {
		// A follower's own commit index lags the leader's until the next
		// heartbeat: ask the leader.
		leader, ok := n.nodeByID(leaderID)
		if !ok {
			return "leader not in the node table yet"
		}
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		st, err := n.peer.Stats(ctx, n.peerURL(leader.APIAddr))
		if err != nil {
			return "leader unreachable: " + err.Error()
		}
		commit = max(commit, st.CommitIndex)
	}
	if applied := n.store.AppliedIndex(); applied < commit {
		return fmt.Sprintf("catching up: applied %d of %d", applied, commit)
	}
	return ""
}

// listenersNotAccepting says why the API or the edge does not accept
// connections (out of descriptors, or the edge server stopped), or "".
func (n *Node) listenersNotAccepting() string {
	if err := n.edgeStopped.Load(); err != nil {
		return "edge server stopped: " + (*err).Error()
	}
	n.acceptMu.Lock()
	defer n.acceptMu.Unlock()
	for _, a := range n.acceptors {
		if why := a.NotAccepting(); why != "" {
			return why
		}
	}
	return ""
}

// newAcceptor wraps ln in a listen.Listener that readiness consults and
// that sheds waiting's connections when descriptors run out.
func (n *Node) newAcceptor(ln net.Listener, name string, waiting *listen.Waiting) *listen.Listener {
	a := listen.New(ln, name, n.log, waiting)
	n.acceptMu.Lock()
	defer n.acceptMu.Unlock()
	n.acceptors = append(n.acceptors, a)
	return a
}
