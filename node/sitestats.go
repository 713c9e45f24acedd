package node

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/builder"
)

// siteStatsTimeout bounds the call to each node for its per-site counters.
const siteStatsTimeout = 2 * time.Second

// handleSiteStats answers GET /v1/sites/{site}/stats: the site's edge
// counters on every node of the placement, asked at once, and their sum.
// A node that does not answer is listed with its error and left out of the
// sum.
func (n *Node) handleSiteStats(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("site")
	if _, err := n.store.Site(name); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, atoll.ErrNotFound) {
			status = http.StatusNotFound
		}
		builder.WriteError(w, status, err.Error())
		return
	}
	out := atoll.SiteStats{Site: name}
	nodes := n.placement().All()
	out.Nodes = make([]atoll.SiteNodeCounts, len(nodes))
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Go(func() {
			c := atoll.SiteNodeCounts{ID: nd.ID}
			var err error
			c.SiteCounts, err = n.siteCountsOf(r.Context(), nd, name)
			if err != nil {
				c.Error = err.Error()
			}
			out.Nodes[i] = c
		})
	}
	wg.Wait()
	for _, c := range out.Nodes {
		out.Requests += c.Requests
		out.Bytes += c.Bytes
	}
	builder.WriteJSON(w, http.StatusOK, out)
}

// siteCountsOf returns node nd's counters of site, locally for this node.
func (n *Node) siteCountsOf(ctx context.Context, nd atoll.Node, site string) (atoll.SiteCounts, error) {
	if nd.ID == n.cfg.ID {
		return n.metrics.edge.Site(site), nil
	}
	ctx, cancel := context.WithTimeout(ctx, siteStatsTimeout)
	defer cancel()
	return n.peer.SiteCounts(ctx, n.peerURL(nd.APIAddr), site)
}

// handlePeerSiteStats answers this node's counters of the site named by
// the query parameter "site" (zero for a site it never served).
func (n *Node) handlePeerSiteStats(w http.ResponseWriter, r *http.Request) {
	builder.WriteJSON(w, http.StatusOK, n.metrics.edge.Site(r.URL.Query().Get("site")))
}
