package node

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/atoll-hosting/atoll"

	"golang.org/x/sync/errgroup"

	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/peer"
)

// maxHasHashes bounds one has or fetch request.
const maxHasHashes = peer.MaxHasHashes

// handlePeerFetch pulls the given blobs from their sources, a few at a
// time, and answers how many arrived.
func (n *Node) handlePeerFetch(w http.ResponseWriter, r *http.Request) {
	hashes, ok := readHashList(w, r, maxHasHashes, "fetch")
	if !ok {
		return
	}
	builder.WriteJSON(w, http.StatusOK, n.fetchAll(r, hashes))
}

// readHashList reads a peer request body {"hashes": [...]} of at most max
// valid hashes. On a bad body it answers the error itself and returns
// false.
func readHashList(w http.ResponseWriter, r *http.Request, max int, what string) ([]string, bool) {
	var req peer.HashList
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, int64(100*max))).Decode(&req); err != nil {
		builder.WriteError(w, http.StatusBadRequest, "malformed "+what+" request: "+err.Error())
		return nil, false
	}
	if len(req.Hashes) > max {
		builder.WriteError(w, http.StatusRequestEntityTooLarge, "too many hashes in one "+what+" request")
		return nil, false
	}
	for _, h := range req.Hashes {
		if !atoll.ValidHash(h) {
			builder.WriteError(w, http.StatusBadRequest, "invalid hash "+strconv.Quote(h))
			return nil, false
		}
	}
	return req.Hashes, true
}

func (n *Node) fetchAll(r *http.Request, hashes []string) peer.FetchResponse {
	var g errgroup.Group
	g.SetLimit(8)
	results := make([]bool, len(hashes))
	for i, h := range hashes {
		g.Go(func() error {
			_, err := n.fetch(r.Context(), h)
			results[i] = err == nil
			return nil
		})
	}
	g.Wait()
	var out peer.FetchResponse
	for _, ok := range results {
		if ok {
			out.Fetched++
		} else {
			out.Failed++
		}
	}
	return out
}

// localStats is what this node tells about itself on peer.StatsPath.
func (n *Node) localStats() peer.Stats {
	blobs, bytes := n.blobs.Usage()
	st := peer.Stats{
		ID:           n.cfg.ID,
		RaftState:    n.store.State(),
		AppliedIndex: n.store.AppliedIndex(),
		CommitIndex:  n.store.CommitIndex(),
		Blobs:        int64(blobs),
		Bytes:        bytes,
		DrainLeft:    n.repair.DrainLeft(),
		DiskLow:      n.diskLow(),
		Version:      n.cfg.Version,
		FeatureLevel: knownFeatureLevel,
		ClusterLevel: n.store.FeatureLevel(),
	}
	if err := n.store.StorageFailed(); err != nil {
		st.Stopped = err.Error()
	}
	st.Repair = n.repair.LastReport()
	if lc := n.store.LastContact(); !lc.IsZero() {
		st.LastContact = time.Since(lc).Round(time.Millisecond).String()
	}
	return st
}

func (n *Node) handlePeerStats(w http.ResponseWriter, r *http.Request) {
	builder.WriteJSON(w, http.StatusOK, n.localStats())
}
