package node

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-hosting/atoll"
)

// nodeCollector exports, at each scrape, the node's gauges read from local
// state (atomic loads and counters, a statfs of the blob disk) and the last
// clusterView. It never makes a network call.
type nodeCollector struct{ n *Node }

// gauge describes one metric of nodeCollector.
func gauge(name, help string, labels ...string) *prometheus.Desc {
	d := prometheus.NewDesc(name, help, labels, nil)
	nodeDescs = append(nodeDescs, d)
	return d
}

var nodeDescs []*prometheus.Desc

// The metrics of nodeCollector; docs/METRICS.md explains each.
var (
	descApplied       = gauge("atoll_raft_applied_index", "Last Raft log index applied to the local state.")
	descCommit        = gauge("atoll_raft_commit_index", "Last Raft log index known committed.")
	descLeader        = gauge("atoll_raft_leader", "1 if this node is the Raft leader.")
	descReady         = gauge("atoll_ready", "1 if this node is a caught-up cluster member (judged from local state; /readyz also asks the leader).")
	descUptime        = gauge("atoll_uptime_seconds", "Seconds since the node started.")
	descFeature       = gauge("atoll_cluster_feature_level", "The cluster's feature level, as this node has applied it.")
	descPending       = gauge("atoll_blobs_compress_pending", "Blobs whose compressed variants are still to be made (background compression).")
	descCompressed    = gauge("atoll_blobs_compressed_total", "Blobs whose compressed variants this node made itself.")
	descVarReceived   = gauge("atoll_blobs_variants_received_total", "Blobs whose compressed variants another owner made and sent to this node.")
	descVarSent       = gauge("atoll_blobs_variants_sent_total", "Transfers of compressed variants this node made to the other owners of a blob, by result.", "result")
	descFree          = gauge("atoll_blob_disk_free_bytes", "Bytes free on the blob store's disk (uploads get 507 below --min-free).")
	descReserve       = gauge("atoll_blob_disk_reserve_bytes", "The --min-free reserve the blob store leaves on its disk.")
	descDiskLow       = gauge("atoll_blob_disk_low", "1 if the blob store refuses new blobs: its disk is full or below the reserve.")
	descBlobs         = gauge("atoll_blobs_stored", "Blobs stored on this node (owned and cached).")
	descBytes         = gauge("atoll_blobs_stored_bytes", "Bytes the stored blobs take on disk, identity and variants.")
	descCacheLimit    = gauge("atoll_cache_limit_bytes", "The --cache-size bound on blobs kept without owning them.")
	descDrainLeft     = gauge("atoll_drain_left_blobs", "Referenced blobs on this draining node not yet confirmed on their new owners; -1 when not draining or not yet counted.")
	descCensusAt      = gauge("atoll_repair_census_timestamp_seconds", "When the last repair census ended (Unix time); exported by the leader alone.")
	descCensusTook    = gauge("atoll_repair_census_duration_seconds", "How long the last repair census took.")
	descReferenced    = gauge("atoll_repair_referenced_blobs", "Distinct blobs referenced by retained deploys, at the last census.")
	descUnder         = gauge("atoll_repair_under_replicated_blobs", "Referenced blobs on fewer than R owners after the last census's pulls.")
	descMissing       = gauge("atoll_repair_missing_blobs", "Referenced blobs on no node at all, at the last census.")
	descPulled        = gauge("atoll_repair_pulled_blobs", "Copies the last census made.")
	descScrubRunning  = gauge("atoll_scrub_running", "1 while a scrub pass runs.")
	descScrubChecked  = gauge("atoll_scrub_checked_blobs", "Blobs verified by the running or last scrub pass.")
	descScrubBytes    = gauge("atoll_scrub_checked_bytes", "Bytes read by the running or last scrub pass.")
	descScrubCorrupt  = gauge("atoll_scrub_corrupt_blobs", "Corrupt copies found (and quarantined) by the running or last scrub pass.")
	descScrubRepaired = gauge("atoll_scrub_repaired_blobs", "Corrupt copies replaced by a healthy one in the running or last scrub pass.")
	descScrubUnread   = gauge("atoll_scrub_unread_blobs", "Blobs the running or last scrub pass could not read.")
	descScrubLast     = gauge("atoll_scrub_last_pass_timestamp_seconds", "When the last complete scrub pass ended (Unix time); 0 before the first.")
	descGCBlobs       = gauge("atoll_gc_deleted_blobs_total", "Unreferenced blobs deleted by garbage collection after their grace period.")
	descGCBytes       = gauge("atoll_gc_reclaimed_bytes_total", "Bytes (identity and variants) garbage collection deleted.")
	descViewAt        = gauge("atoll_cluster_view_timestamp_seconds", "When the per-node, deploy and certificate metrics were last refreshed (Unix time).")
	descNodeUp        = gauge("atoll_node_up", "1 if the node answered this node's last stats call, by node id.", "node")
	descNodeLag       = gauge("atoll_node_lag_entries", "Raft entries the node's applied index is behind the highest commit index seen; -1 when unknown.", "node")
	descNodeDiskLow   = gauge("atoll_node_disk_low", "1 if the node reported its disk below its reserve.", "node")
	descDeploys       = gauge("atoll_deploys", "Deploys by state, cluster-wide.", "state")
	descSites         = gauge("atoll_sites", "Sites, cluster-wide.")
	descCertExpiry    = gauge("atoll_tls_cert_expiry_timestamp_seconds", "When a certificate the edge serves for a name expires (Unix time), uploaded or issued by ACME, by domain and site.", "domain", "site")
)

// deployStates are the states atoll_deploys always reports, zero or not.
var deployStates = []atoll.DeployState{
	atoll.StateUploading, atoll.StateReady, atoll.StatePublished,
	atoll.StateSuperseded, atoll.StateFailed,
}

// Describe implements prometheus.Collector.
func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range nodeDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	g(descApplied, float64(n.store.AppliedIndex()))
	g(descCommit, float64(n.store.CommitIndex()))
	g(descLeader, b2f(n.store.IsLeader()))
	g(descReady, b2f(n.notReady(n.ctx, false) == ""))
	g(descUptime, time.Since(n.started).Seconds())
	g(descFeature, float64(n.store.FeatureLevel()))
	g(descPending, float64(n.blobs.PendingCompression()))
	cs := n.blobs.CompressStats()
	counter(descCompressed, float64(cs.Compressed))
	counter(descVarReceived, float64(cs.Accepted))
	ch <- prometheus.MustNewConstMetric(descVarSent, prometheus.CounterValue, float64(n.variants.sent.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(descVarSent, prometheus.CounterValue, float64(n.variants.failed.Load()), "failed")
	if free, err := n.blobs.FreeBytes(); err == nil {
		g(descFree, float64(free))
	}
	g(descReserve, float64(n.cfg.MinFreeBytes))
	g(descDiskLow, b2f(n.spaceLow() != nil))
	blobs, bytes := n.blobs.Usage()
	g(descBlobs, float64(blobs))
	g(descBytes, float64(bytes))
	g(descCacheLimit, float64(n.cfg.CacheSize))
	g(descDrainLeft, float64(n.repair.DrainLeft()))
	// Only the leader exports the census: a node that led before keeps its
	// last report, which the current leader's census has replaced (what
	// GET /v1/status shows), and max() over the nodes would read it.
	if r := n.repair.LastReport(); r != nil && n.store.IsLeader() {
		g(descCensusAt, float64(r.At.UnixMilli())/1e3)
		if took, err := time.ParseDuration(r.Took); err == nil {
			g(descCensusTook, took.Seconds())
		}
		g(descReferenced, float64(r.Referenced))
		g(descUnder, float64(r.UnderReplicated))
		g(descMissing, float64(r.Missing))
		g(descPulled, float64(r.Pulled))
	}
	c.collectScrub(g)
	counter(descGCBlobs, float64(n.gcBlobs.Load()))
	counter(descGCBytes, float64(n.gcBytes.Load()))
	c.collectView(g)
}

func (c nodeCollector) collectScrub(g func(*prometheus.Desc, float64, ...string)) {
	s := c.n.scrub.Status()
	g(descScrubRunning, b2f(s.Running))
	g(descScrubChecked, float64(s.Checked))
	g(descScrubBytes, float64(s.Bytes))
	g(descScrubCorrupt, float64(s.Corrupt))
	g(descScrubRepaired, float64(s.Repaired))
	g(descScrubUnread, float64(s.Unread))
	last := 0.0
	if !s.LastPass.IsZero() {
		last = float64(s.LastPass.Unix())
	}
	g(descScrubLast, last)
}

// collectView exports the last clusterView; nothing before the first.
func (c nodeCollector) collectView(g func(*prometheus.Desc, float64, ...string)) {
	v := c.n.metrics.view.Load()
	if v == nil {
		return
	}
	g(descViewAt, float64(v.at.Unix()))
	for _, nd := range v.nodes {
		g(descNodeUp, b2f(nd.up), nd.id)
		g(descNodeLag, float64(nd.lag), nd.id)
		g(descNodeDiskLow, b2f(nd.disk), nd.id)
	}
	for _, s := range deployStates {
		g(descDeploys, float64(v.deploys[s]), string(s))
	}
	g(descSites, float64(v.sites))
	for _, cert := range v.certs {
		g(descCertExpiry, float64(cert.NotAfter.Unix()), cert.Domain, cert.Site)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// gcLocal is repair.Local on the node's blob store, counting what garbage
// collection (the only caller of Delete) reclaims.
type gcLocal struct{ n *Node }

func (l gcLocal) Walk(ctx context.Context, fn func(hash string) error) error {
	return l.n.blobs.Walk(ctx, fn)
}

func (l gcLocal) Delete(hash string) error {
	info, statErr := l.n.blobs.Stat(hash)
	if err := l.n.blobs.Delete(hash); err != nil {
		return err
	}
	l.n.gcBlobs.Add(1)
	if statErr == nil {
		size := info.Size
		for _, v := range info.Variants {
			size += v.Size
		}
		l.n.gcBytes.Add(size)
	}
	return nil
}
