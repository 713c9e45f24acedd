package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/atoll-hosting/atoll"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/scrub"
)

// Scrub (package scrub) re-hashes the blobs this node holds and replaces
// corrupt copies. Node wires it: the local blob store, its read-through
// fetch as the source of healthy copies, and the edge to invalidate; and
// it serves the scrub routes and tells a peer that sent corrupt bytes.

const (
	// scrubWaitDefault and scrubWaitMax bound how long POST
	// /v1/nodes/{id}/scrub waits for the pass to finish before answering
	// 202 with its progress (below the peer client's one-minute timeout,
	// since the call may be forwarded).
	scrubWaitDefault = 20 * time.Second
	scrubWaitMax     = 50 * time.Second
	// maxVerifyHashes bounds one POST /v1/peer/verify.
	maxVerifyHashes = 64
)

// newScrubber makes the node's scrubber; Start runs its schedule.
func (n *Node) newScrubber() (*scrub.Scrubber, error) {
	return scrub.New(scrub.Config{
		Self:      n.cfg.ID,
		StateFile: filepath.Join(n.cfg.DataDir, "scrub.json"),
		Rate:      n.cfg.ScrubRate,
		Interval:  n.cfg.ScrubInterval,
		Logger:    n.log,
	}, n.blobs, scrubHolders{n}, scrubEdge{n})
}

// scrubHolders is scrub.Holders: the node's read-through fetch.
type scrubHolders struct{ n *Node }

func (h scrubHolders) Fetch(ctx context.Context, hash string) error {
	_, err := h.n.fetch(ctx, hash)
	return err
}

// scrubEdge is scrub.Edge: the edge, once started.
type scrubEdge struct{ n *Node }

func (e scrubEdge) Invalidate(hash string) { e.n.invalidateEdge(hash) }

var (
	_ scrub.Blobs   = (*blobstore.Store)(nil)
	_ scrub.Holders = scrubHolders{}
	_ scrub.Edge    = scrubEdge{}
)

// reportCorrupt tells node src that the copy of hash it sent did not match
// the hash, so that it checks (and replaces) its copy now rather than at
// its next pass. Best effort, in the background.
func (n *Node) reportCorrupt(src atoll.Node, hash string) {
	if n.ctx.Err() != nil {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		defer cancel()
		if err := n.peer.Verify(ctx, n.peerURL(src.APIAddr), []string{hash}); err != nil {
			n.log.Warn("scrub: report a corrupt copy to its holder", "blob", hash, "node", src.ID, "err", err)
		}
	}()
}

// handleScrub serves POST (start a pass, wait up to ?wait=, default 20s)
// and GET (the running or last pass) of /v1/nodes/{id}/scrub, for this node
// or, through its peer endpoint, for another. 200 when the pass is over,
// 202 while it runs.
func (n *Node) handleScrub(w http.ResponseWriter, r *http.Request) {
	wait, err := scrubWait(r)
	if err != nil {
		builder.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	id := r.PathValue("id")
	if id == n.cfg.ID {
		n.serveScrub(w, r, wait)
		return
	}
	nd, ok := n.nodeByID(id)
	if !ok || nd.State == atoll.NodeRemoved {
		builder.WriteError(w, http.StatusNotFound, fmt.Sprintf("no node %q in the cluster", id))
		return
	}
	st, err := n.peer.Scrub(r.Context(), r.Method, n.peerURL(nd.APIAddr), wait)
	if err != nil {
		var pe *peer.Error
		if errors.As(err, &pe) {
			builder.WriteError(w, pe.StatusCode, fmt.Sprintf("node %s: %s", id, pe.Message))
			return
		}
		builder.WriteError(w, http.StatusBadGateway, fmt.Sprintf("node %s unreachable: %v", id, err))
		return
	}
	writeScrubStatus(w, st)
}

func (n *Node) handlePeerScrub(w http.ResponseWriter, r *http.Request) {
	wait, err := scrubWait(r)
	if err != nil {
		builder.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	n.serveScrub(w, r, wait)
}

func (n *Node) serveScrub(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	if r.Method == http.MethodPost {
		done := n.scrub.Request()
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		case <-r.Context().Done():
		}
	}
	writeScrubStatus(w, n.scrub.Status())
}

func writeScrubStatus(w http.ResponseWriter, st atoll.ScrubStatus) {
	status := http.StatusOK
	if st.Running {
		status = http.StatusAccepted
	}
	builder.WriteJSON(w, status, st)
}

func scrubWait(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return scrubWaitDefault, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("wait %s: want a duration such as 10s", strconv.Quote(v))
	}
	return min(d, scrubWaitMax), nil
}

// handlePeerVerify checks the given blobs now, in the background: a peer
// received bytes from this node that did not match their hash.
func (n *Node) handlePeerVerify(w http.ResponseWriter, r *http.Request) {
	hashes, ok := readHashList(w, r, maxVerifyHashes, "verify")
	if !ok {
		return
	}
	if err := n.scrub.CheckLater(hashes); err != nil {
		builder.WriteError(w, http.StatusServiceUnavailable, "node shutting down")
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
