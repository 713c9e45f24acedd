package node

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"slices"
	"strings"

	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/ui"
)

// routes is the table of every endpoint of the API listener, with the
// scope each needs: builder's routes, the node's admin routes, the peer
// protocol, the profiles and the probes. Security review is one read of
// it; mount puts each scope's guard in front of its handlers.
func (n *Node) routes(api *builder.API) []builder.Route {
	const (
		public      = builder.Public
		admin       = builder.Admin
		peerScope   = builder.Peer
		adminOrPeer = builder.AdminOrPeer
	)
	row := func(method, pattern string, s builder.Scope, h http.Handler) builder.Route {
		return builder.Route{Method: method, Pattern: pattern, Scope: s, Handler: h}
	}
	h := func(f http.HandlerFunc) http.Handler { return f }
	leader := func(f http.HandlerFunc) http.Handler { return n.onLeader(f) } // proxied to the Raft leader
	return append(api.Routes(),
		row("GET", "/v1/status", admin, h(n.handleStatus)),
		row("GET", "/v1/nodes", admin, h(n.handleNodes)),
		row("POST", peer.JoinPath, adminOrPeer, leader(n.handleJoin)), // a node joining by itself sends the cluster key
		row("POST", "/v1/nodes/{id}/drain", admin, leader(n.handleDrain)),
		row("GET", "/v1/nodes/{id}/drain", admin, h(n.handleDrainStatus)),
		row("DELETE", "/v1/nodes/{id}", admin, leader(n.handleRemove)),
		row("POST", "/v1/repair", admin, leader(n.handleRepair)),
		row("POST", "/v1/bulk/sites", admin, leader(api.BulkSites)),
		row("POST", "/v1/nodes/{id}/scrub", admin, h(n.handleScrub)),
		row("GET", "/v1/nodes/{id}/scrub", admin, h(n.handleScrub)),
		row("GET", "/v1/snapshot", admin, h(n.handleSnapshotSave)),
		row("GET", "/v1/sites/{site}/stats", builder.Site, h(n.handleSiteStats)), // sitestats.go
		row("POST", "/v1/snapshot/restore", admin, leader(n.handleSnapshotRestore)),

		// Node-to-node traffic: the cluster key, never a builder token.
		row("PUT", peer.BlobPath, peerScope, peer.PutBlobHandler(n.blobs)),
		row("POST", peer.BatchPath, peerScope, peer.PutBatchHandler(n.blobs)),
		row("GET", peer.BlobPath, peerScope, peer.GetBlobHandler(n.blobs)),
		row("PUT", peer.VariantsPath, peerScope, peer.PutVariantsHandler(n.blobs)),
		row("POST", peer.VariantsBatchPath, peerScope, peer.PutVariantsBatchHandler(n.blobs)),
		row("POST", peer.HasPath, peerScope, peer.HasHandler(n.blobs)),
		row("POST", peer.ApplyPath, peerScope, h(n.handlePeerApply)),
		row("POST", peer.FetchPath, peerScope, h(n.handlePeerFetch)),
		row("GET", peer.StatsPath, peerScope, h(n.handlePeerStats)),
		row("POST", peer.ScrubPath, peerScope, h(n.handlePeerScrub)),
		row("GET", peer.ScrubPath, peerScope, h(n.handlePeerScrub)),
		row("POST", peer.VerifyPath, peerScope, h(n.handlePeerVerify)),
		row("GET", peer.MemberPath, peerScope, h(n.handlePeerMember)),
		row("GET", peer.SiteStatsPath, peerScope, h(n.handlePeerSiteStats)),
		row("GET", peer.LogPath, peerScope, n.feedUnlessRemoved(peer.NewFeeder(n.cfg.ID, n.store))), // feeds fed edges (feed.go)
		row("GET", peer.SnapshotPath, peerScope, h(n.handleSnapshotSave)),

		// The Go runtime's profiles (net/http/pprof), admin only: the
		// profiles of the real binary under real load are how the serving
		// and ingest paths are tuned (bench/RESULTS.md). For example, 20 s
		// of CPU profile:
		//
		//	curl -H "Authorization: Bearer $TOKEN" -o cpu.pprof \
		//	  'http://127.0.0.1:8081/debug/pprof/profile?seconds=20'
		//	go tool pprof -top cpu.pprof
		row("GET", "/debug/pprof/", admin, h(pprof.Index)),
		row("GET", "/debug/pprof/cmdline", admin, h(n.handleCmdline)), // secrets redacted
		row("GET", "/debug/pprof/profile", admin, h(pprof.Profile)),
		row("GET", "/debug/pprof/symbol", admin, h(pprof.Symbol)),
		row("GET", "/debug/pprof/trace", admin, h(pprof.Trace)),

		// Probes, for load balancers and monitoring.
		row("GET", "/healthz", public, h(n.handleHealth)),
		row("GET", "/readyz", public, h(n.handleReady)),
		row("GET", "/metrics", public, n.metrics.handler()),

		// The operator's status page (package ui): public files, which read
		// the admin routes above with a token the operator enters.
		row("GET", "/ui/", public, ui.Handler("/ui/")),
		row("", "/", public, h(noSuchEndpoint)), // any method: what no other route matches
	)
}

// mount registers routes on mux, each behind its scope's guard.
func (n *Node) mount(mux *http.ServeMux, api *builder.API, routes []builder.Route) {
	for _, r := range routes {
		pattern := r.Pattern
		if r.Method != "" {
			pattern = r.Method + " " + pattern
		}
		mux.Handle(pattern, n.guard(api, r.Scope, r.Handler))
	}
}

// guard returns h behind what scope s requires: the cluster key for Peer,
// the key or the admin token for AdminOrPeer, builder's guards for the
// others.
func (n *Node) guard(api *builder.API, s builder.Scope, h http.Handler) http.Handler {
	switch s {
	case builder.Peer:
		return n.requirePeer(h)
	case builder.AdminOrPeer:
		return n.adminOrPeer(api.RequireAuth(h), h)
	}
	return api.Guard(s, h)
}

// requirePeer lets a request through only with the cluster key (and, on
// cluster TLS, a client certificate of the cluster CA).
func (n *Node) requirePeer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.cfg.ClusterKey == "" {
			builder.WriteError(w, http.StatusForbidden, "peer traffic is disabled on this node: start it with --cluster-key")
			return
		}
		if !n.peerCertOK(r) {
			refusePeerCert(w)
			return
		}
		if !peer.KeyOK(r, n.cfg.ClusterKey) {
			builder.WriteError(w, http.StatusForbidden, "missing or wrong cluster key")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// adminOrPeer admits a request carrying the cluster key (a node joining by
// itself, which on cluster TLS also needs a client certificate of the
// cluster CA) to next, and any other to withAuth (an operator's token).
func (n *Node) adminOrPeer(withAuth, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if peer.KeyOK(r, n.cfg.ClusterKey) {
			if !n.peerCertOK(r) {
				refusePeerCert(w)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		withAuth.ServeHTTP(w, r)
	})
}

// handleCmdline is pprof.Cmdline with the node's secrets (the admin token
// and the cluster key, when given as flags) replaced by "[redacted]"
// wherever they appear in an argument: the profile is for operators, who
// need the flags, not the secrets.
func (n *Node) handleCmdline(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, strings.Join(redactArgs(os.Args, n.cfg.AdminToken, n.cfg.ClusterKey), "\x00"))
}

// redactArgs returns args with every occurrence of each non-empty secret
// replaced by "[redacted]".
func redactArgs(args []string, secrets ...string) []string {
	out := slices.Clone(args)
	for i := range out {
		for _, s := range secrets {
			if s != "" {
				out[i] = strings.ReplaceAll(out[i], s, "[redacted]")
			}
		}
	}
	return out
}

// noSuchEndpoint answers a request no route matches.
func noSuchEndpoint(w http.ResponseWriter, r *http.Request) {
	builder.WriteError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
}
