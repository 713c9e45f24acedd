package node

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	gmprom "github.com/hashicorp/go-metrics/compat/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/serve"
)

// What a node's metrics say of the cluster (reachability and lag of every
// node, deploys by state, certificate expiry) takes network calls and scans
// of the whole catalog, which a scrape never makes: metricsLoop refreshes
// it every metricsRefresh, and after a change of the replicated state, but
// not more often than every metricsMinGap.
const (
	metricsRefresh = 10 * time.Second
	metricsMinGap  = time.Second
)

// metrics are a node's Prometheus metrics (docs/METRICS.md lists them).
// A scrape reads atomics, counters and the last clusterView: it makes no
// network call and takes no lock the edge takes.
type metrics struct {
	reg          *prometheus.Registry
	edge         *serve.Stats
	apply        prometheus.Histogram
	peerFetches  *prometheus.CounterVec
	evicted      prometheus.Counter
	evictedBytes prometheus.Counter
	leaderChange prometheus.Counter
	view         atomic.Pointer[clusterView]
}

// clusterView is what metricsLoop last learnt of the cluster.
type clusterView struct {
	at      time.Time
	nodes   []nodeView
	sites   int
	deploys map[atoll.DeployState]int
	certs   []atoll.Cert // without their keys
}

type nodeView struct {
	id   string
	up   bool
	lag  int64 // as of its last answer when it does not answer; -1 when never known
	disk bool  // below its --min-free reserve
}

// raftMetricsBlocked are the go-metrics keys not bridged: samples taken per
// RPC, per replicated batch or per storage operation, whose summaries would
// cost the Raft loop more than they tell (docs/METRICS.md).
var raftMetricsBlocked = []string{
	"raft.replication", "raft.rpc", "raft.net", "raft.boltdb",
	"raft.leader.dispatchLog", "raft.leader.dispatchNumLogs",
	"raft.fsm.enqueue", "raft.fsm.applyBatch", "raft.fsm.applyBatchNum",
}

// raftSink is the process's go-metrics sink, which hashicorp/raft and
// raft-boltdb write to (go-metrics keeps one global sink per process):
// every node of the process registers it, so in a process with several
// nodes (tests) each node's /metrics shows all their Raft metrics.
var raftSink = sync.OnceValues(func() (*gmprom.PrometheusSink, error) {
	sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{
		Registerer: prometheus.NewRegistry(), // each node's registry adds it
		Name:       "atoll_raft_sink",
	})
	if err != nil {
		return nil, err
	}
	cfg := gometrics.DefaultConfig("atoll")
	cfg.EnableHostname = false
	cfg.EnableRuntimeMetrics = false // the Go collector has them
	for _, key := range raftMetricsBlocked {
		// go-metrics matches its filter against the key with the service
		// name in front: "atoll.raft.rpc...".
		cfg.BlockedPrefixes = append(cfg.BlockedPrefixes, cfg.ServiceName+"."+key)
	}
	if _, err := gometrics.NewGlobal(cfg, sink); err != nil {
		return nil, err
	}
	return sink, nil
})

// newMetrics makes the registry of node n, with every collector but the
// edge's counters, which startEdge hands to the edge.
func newMetrics(n *Node) (*metrics, error) {
	m := &metrics{
		reg:  prometheus.NewRegistry(),
		edge: serve.NewStats(n.cfg.MetricsSiteLabels),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "atoll_apply_duration_seconds",
			Help:    "Time from a metadata change asked of this node to its being applied here (forwarding to the leader included).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		peerFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "atoll_peer_fetches_total",
			Help: "Blob fetches from a peer, by peer node id and result (ok, not_found, down, error).",
		}, []string{"peer", "result"}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_cache_evicted_blobs_total",
			Help: "Cached (not owned) blobs evicted to keep within --cache-size.",
		}),
		evictedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_cache_evicted_bytes_total",
			Help: "Bytes of cached blobs evicted to keep within --cache-size.",
		}),
		leaderChange: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "atoll_leader_changes_total",
			Help: "Times this node saw the Raft leader change (a new leader, or none).",
		}),
	}
	sink, err := raftSink()
	if err != nil {
		return nil, err
	}
	for _, c := range []prometheus.Collector{
		m.edge, m.apply, m.peerFetches, m.evicted, m.evictedBytes, m.leaderChange,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		sink,
		nodeCollector{n},
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "atoll_access_log_dropped_lines_total",
			Help: "Access log lines dropped because the writer fell behind (or failed); 0 without --access-log.",
		}, n.accessDropped),
	} {
		if err := m.reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// handler serves the registry in the Prometheus exposition formats.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ReopenAccessLog reopens the --access-log file (after logrotate renamed
// it); a no-op without one.
func (n *Node) ReopenAccessLog() {
	if n.access != nil {
		n.access.Reopen()
	}
}

// accessDropped is atoll_access_log_dropped_lines_total.
func (n *Node) accessDropped() float64 {
	if n.access == nil {
		return 0
	}
	return float64(n.access.Dropped())
}

// fetched counts one blob fetch from peer id by its result: ok,
// not_found (the peer lacks it), down (skipped: the peer is known down),
// error.
func (m *metrics) fetched(id string, err error) {
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, blobstore.ErrNotFound):
		result = "not_found"
	case errors.Is(err, peer.ErrDown):
		result = "down"
	default:
		result = "error"
	}
	m.peerFetches.WithLabelValues(id, result).Inc()
}

// metricsLoop refreshes the clusterView (see metricsRefresh) and counts
// leader changes as they happen.
func (n *Node) metricsLoop() {
	tick := time.NewTicker(metricsRefresh)
	defer tick.Stop()
	leader := n.store.LeaderID()
	var gap <-chan time.Time // running while a refresh would come too soon
	due := true
	for {
		if due && gap == nil {
			n.refreshClusterView()
			due, gap = false, time.After(metricsMinGap)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-n.store.LeaderChanged():
			if id := n.store.LeaderID(); id != leader {
				leader = id
				n.metrics.leaderChange.Inc()
			}
		case <-n.store.Changed():
			due = true
		case <-tick.C:
			due = true
		case <-gap:
			gap = nil
		}
	}
}

// refreshClusterView asks every node for its stats (2 s each, at once) and
// reads the site and deploy counts and the certificates of the catalog,
// then publishes the result for scrapes. The node table is GET
// /v1/status's (nodeTable). Its calls leave the peers' health alone: a
// node that fails to answer a metrics refresh is not marked down for the
// calls that serve, repair and replicate (peer.Health), which would
// otherwise skip it until a probe answers. Nothing it reads grows with the
// number of sites: the counts are the FSM's (raft/counts.go), the
// certificates are read from their own tables (certExpiries).
func (n *Node) refreshClusterView() {
	ctx, cancel := context.WithTimeout(n.ctx, metricsRefresh)
	defer cancel()
	v := &clusterView{at: time.Now(), deploys: map[atoll.DeployState]int{}}
	quiet := *n.peer
	quiet.Health = nil
	nodes := n.placement().All()
	table, _ := n.nodeTable(nodes, n.fanOutVia(ctx, &quiet, nodes))
	for _, ns := range table {
		v.nodes = append(v.nodes, nodeView{id: ns.ID, up: ns.RaftState != unreachable, lag: ns.Lag, disk: ns.DiskLow != ""})
	}
	v.sites = n.store.SiteCount()
	if counts, err := n.store.DeployCounts(); err == nil {
		v.deploys = counts
	}
	v.certs = n.certExpiries()
	n.metrics.view.Store(v)
}

// certExpiries is what atoll_tls_cert_expiry_timestamp_seconds exports:
// the certificates GET /v1/sites/{site}/certs lists (and the status page
// shows), without their keys: every uploaded one, and for every other name
// of a site (a custom domain, or the site's host with ACMESiteHosts) the
// latest ACME issued. It walks the certificates table and the issued
// certificates of the ACME store, whose sizes grow with the names that
// have a certificate, not with the sites.
func (n *Node) certExpiries() []atoll.Cert {
	out, err := n.store.CertExpiries()
	if err != nil && !errors.Is(err, atoll.ErrUnavailable) {
		n.log.Warn("metrics: read the certificates", "err", err)
	}
	uploaded := map[string]bool{}
	for _, c := range out {
		uploaded[c.Domain] = true
	}
	issued := map[string]atoll.Cert{}
	issuers, _, err := n.store.ACMEKeys("certificates", false)
	if err != nil {
		n.log.Warn("metrics: read the issued certificates", "err", err)
	}
	for _, dir := range issuers {
		names, _, err := n.store.ACMEKeys(dir, false)
		if err != nil {
			n.log.Warn("metrics: read the issued certificates", "err", err)
			continue
		}
		for _, key := range names {
			name := path.Base(key)
			if uploaded[name] { // an uploaded certificate wins
				continue
			}
			site := n.siteOfName(name)
			if site == "" {
				continue
			}
			pemBytes, _, err := n.store.ACMEValue(key + "/" + name + ".crt")
			if err != nil {
				continue // no certificate (yet) in this directory
			}
			leaf, err := parseLeaf(pemBytes)
			if err != nil {
				n.log.Warn("metrics: read the issued certificates", "name", name, "err", err)
				continue
			}
			if c, ok := issued[name]; !ok || leaf.NotAfter.After(c.NotAfter) {
				issued[name] = atoll.Cert{Domain: name, Site: site, NotAfter: leaf.NotAfter}
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(issued)) {
		out = append(out, issued[name])
	}
	return out
}

// siteOfName returns the site that serves name and would have ACME manage
// it (acmeNames): the site claiming it as a custom domain, or with
// ACMESiteHosts the site whose host it is; "" for none.
func (n *Node) siteOfName(name string) string {
	if s, err := n.store.SiteByDomain(name); err == nil {
		return s.Name
	}
	if label, ok := strings.CutSuffix(name, "."+n.cfg.Domain); ok && n.cfg.ACMESiteHosts {
		if _, err := n.store.Site(label); err == nil {
			return label
		}
	}
	return ""
}
