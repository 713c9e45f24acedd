// Package node runs one Atoll node: it owns the node's configuration, the
// start and stop order of its parts (blob store, Raft store, builder API,
// edge, repair, scrub), membership (join, drain, remove), the eviction and
// prefetch loops, the admin and peer HTTP handlers, and the glue that
// implements the small interfaces builder, serve, repair and scrub
// declare.
//
// Data directory layout (Config.DataDir):
//
//	FORMAT       the data-dir format (datadir.go), written after upgrades
//	node-id      this node's id, fixed at first start
//	token        the generated admin token (mode 0600), when none was given
//	scrub.json   the scrubber's schedule and cursor (package scrub)
//	raft/        Raft log, stable store, snapshots and the FSM's bbolt file
//	blobs/       the content-addressed blob store; blobs/tmp is the
//	             format guard, a regular file (datadir.go)
//	tmp/         spool space for tar uploads, emptied at start
//
// Small files are written through internal/durable (temp file, fsync,
// rename); Start removes the temp files an interrupted write left. Start
// refuses a data dir of a newer format than DataDirFormat before writing
// anything, and upgrades an older one in place (datadir.go).
//
// Versions and feature levels (feature.go): every node reports its
// version and the highest feature level its binary knows in its peer
// stats; the leader raises the cluster's level once every member (Raft
// configuration and node table) knows a higher one, checking every few
// seconds and on membership changes; RequireFeature answers the API's 409
// naming the nodes that hold a level back, from the last census of the
// members' binaries; a join is refused to a binary older than the
// cluster's level.
//
// # Cluster
//
// Core nodes are Raft voters and own blobs; edge nodes are non-voters that
// hold copies of what they serve, or fed edges (feed.go, --feed-from):
// outside the Raft configuration, they follow the committed log of a Raft
// member through GET /v1/peer/log, so that the leader's work does not
// grow with every edge (docs/FANOUT.md). The leader keeps at most
// Config.MaxDirectEdges edges as non-voters and makes every later edge
// that joins by itself a fed edge of the relay that feeds the fewest
// (assign.go). Placement (package placement): the owners
// of a blob are the top R active core nodes by rendezvous hashing, computed
// from the replicated node table, so no location is stored per blob.
//
// Writes (cluster.go) go through the leader: a follower forwards the
// encoded command to the leader's peer endpoint and then waits until it has
// applied the result itself, so a client reads its own writes from any node.
// Rejections keep their meaning across the hop (not found, conflict, ...).
//
// Blobs (blobs.go): an upload is stored locally, then pushed to the other
// owners; it is acknowledged once a majority of the owners hold it fsynced.
// A batch (blobbatch.go) is stored with one group commit and pushed to
// each other owner in one request (blob by blob to a node without the
// batch endpoint), and acknowledged once every blob of it is so held.
// The builder's "is it stored" check uses the same majority rule; a blob
// held by some owners but fewer than a majority (one that acknowledged it
// stopped before the last had its copy) is first copied to the reachable
// owners that lack it (heal). Reads are local; a missing blob is fetched
// from its owners in placement order, then from any other node, each
// attempt bounded by FetchTimeout, the bytes verified against the hash, one
// transfer for concurrent misses (fetch.go). A small cache copy is received
// into memory and the edge answers from those bytes (checking the variant
// it serves) while the copy is written in the background. Copies a node
// keeps without owning them form its cache (cache.go), evicted least
// recently served first once over CacheSize, and only after the owners were
// seen to hold them. A copy the background compression finds rotten is
// quarantined and replaced as the scrubber does (blobs_variants.go). Each
// blob is compressed once in the cluster, by its first owner not down,
// which sends the variants to the other owners and the edges, in batches
// (one queue per target); they wait VariantsWait for them before
// compressing their own copy (variants.go).
//
// Repair (package repair, wired in repair.go) runs on every membership
// change and every RepairInterval: each node hands its non-owned blobs to
// owners that lack them; the leader takes a census of what the owners
// really hold and has each owner pull what it lacks. Unreferenced blobs
// are deleted after GCGrace. The leader fails deploys still uploading
// DeployExpiry after their creation (expire.go), so abandoned uploads stop
// holding their blobs (and, from feature level 2, their manifests leave
// the replicated state). Drain marks a node draining (no longer an
// owner) and waits for the census and its own hand-over to move its blobs;
// remove is refused while a referenced blob has no copy on another core
// node.
//
// Routes (routes.go): one table names every endpoint of the API listener
// (builder's routes, the admin routes, the peer protocol, profiles and
// probes) with its scope; mount puts each scope's guard in front of its
// handlers. Peer traffic (package peer: blob push/fetch, has, apply,
// fetch, stats, scrub, verify) needs the cluster key; a builder token
// never opens it. Every call to another node goes through peer.Client,
// whose peer.Health (cluster.go, newPeerHealth) skips a peer that did not
// answer one call until a probe of its /healthz answers: a frozen node
// costs one timeout, not one per blob.
//
// Removal (membership.go, watchRemoval): a node that learns it was removed
// (the Raft configuration or the node table no longer lists it) answers
// every edge request 503 with ErrRemoved, fails /readyz and logs it once.
// A node that hears from no leader asks its peers whether it is still a
// member (orphan.go), so one cut off during its removal learns it too.
// Right after it installs a snapshot from the leader, and until the next
// entry applies, a node judges from the node table alone: hashicorp/raft
// sets the snapshot's configuration only after the FSM restored it
// (configSettled).
//
// Scrub (package scrub, wired in scrub.go): every node re-hashes the blobs
// it holds, at most ScrubRate bytes per second, a full pass every
// ScrubInterval (resumed where it stopped after a restart) and on request
// (POST /v1/nodes/{id}/scrub, forwarded to that node through its peer
// endpoint). A corrupt copy is quarantined at once (blobstore.Quarantine),
// forgotten by the edge (serve.Handler.Invalidate) and replaced from
// another holder; a node that receives corrupt bytes from a peer asks that
// peer to check its copy now (POST /v1/peer/verify). Disk full (space.go):
// the blob store refuses writes below MinFreeBytes of free space or on
// ENOSPC (blobstore.ErrNoSpace); a full node relays small uploads to the
// other owners and serves what it lacks from memory, or streams it from a
// source when it is too big for that (stream.go), other uploads answer
// 507, a full owner answers pushes with 507, and reads go on.
//
// TLS (tls.go): with Config.TLSCert, TLSKey and TLSCA, Raft runs on mutual
// TLS (raft.Config.TLS), the API serves HTTPS with optional client
// certificates, and peer calls and joins by cluster key also require a
// client certificate of the cluster CA; outgoing peer calls present the
// node's certificate and go to https://<api addr> (peerURL). Package pki
// loads the node's certificate and makes a CA and node certificates
// (`atoll certs init`). The edge's optional HTTPS listener (edgetls.go,
// Config.HTTPSAddr) picks certificates by SNI from the replicated
// certificates of custom domains, parsed once and cached until the
// replicated state changes; their private keys are sealed with the cluster
// key on the way in (builder.Config.SealCertKey) and opened here.
// With Config.ACME (acme.go), every node runs certmagic over the
// replicated ACME store (package acme) for the names the sites serve:
// one node orders each name under a Raft-leased lock, every node answers
// HTTP-01 before the edge and TLS-ALPN-01 in the handshake, and serves
// the issued certificate where no uploaded one exists; the node working
// on an order records its state for `atoll cert list` (acmestatus.go).
//
// The admin token (node.go) lives in the replicated state alone:
// Config.AdminToken, else the token file, seeds it at bootstrap only; a
// restart checks the given token against the cluster's once caught up and
// warns when they differ, never writing it (a rotation stands). A rotation
// through this node (PUT /v1/admin-token) rewrites its token file, if any.
//
// Backups (snapshot.go): GET /v1/snapshot streams this node's metadata in
// the Raft snapshot format; POST /v1/snapshot/restore, on the leader,
// replaces the cluster's metadata with such a file (raft's Store.RestoreBackup).
//
// Limits (limits.go): the API and the edge run with header, idle and body
// timeouts and size limits from Config.HTTPLimits; API bodies must keep a
// minimum rate both ways instead of a whole-request timeout; the edge's
// connection limits default to what fits the descriptor limit, which Start
// raises to the hard limit. Both listeners outlast running out of
// descriptors (package listen): they shed connections that wait for a request
// and retry, and /readyz fails meanwhile. fasthttp logs through edgeLogger
// (edgelog.go), which keeps no request bytes and rate-limits.
//
// Metrics (metrics.go, metrics_collect.go; every one in docs/METRICS.md):
// one Prometheus registry per node with the edge's serve.Stats, the node's
// gauges read at scrape time from local state, and hashicorp/raft's
// go-metrics through the process's Prometheus sink. A scrape never makes a
// network call and never takes a lock the edge takes: what needs the
// network or a scan of the catalog (node reachability and lag, deploys by
// state, certificate expiry) is refreshed by metricsLoop, from the node
// table GET /v1/status shows (nodeTable), and the repair census is exported
// by the leader alone, so that `atoll status`, the status page and the
// metrics say the same. Per-site counters are summed across nodes by
// GET /v1/sites/{site}/stats (sitestats.go).
//
// A single node is the cluster of one: it bootstraps Raft with itself as
// the only voter, owns every blob, and serves every site from its own disk.
//
// Node must never serve a visitor from anything but local state plus blobs
// fetched from peers: the edge reads the replicated metadata locally, so it
// keeps serving when the Raft leader is gone.
package node
