package node

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/atoll-hosting/atoll"

	"golang.org/x/sync/errgroup"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
)

// Peer endpoints: node-to-node traffic on the API listener, gated by the
// cluster key (never by a builder token).
func (n *Node) registerPeer(mux *http.ServeMux) {
	mux.Handle("PUT "+blobstore.PeerBlobPath, n.requirePeer(n.handlePeerPutBlob))
	mux.Handle("GET "+blobstore.PeerBlobPath, n.requirePeer(n.handlePeerGetBlob))
	mux.Handle("POST "+blobstore.PeerHasPath, n.requirePeer(n.handlePeerHas))
	mux.Handle("POST /v1/peer/apply", n.requirePeer(n.handlePeerApply))
	mux.Handle("POST /v1/peer/fetch", n.requirePeer(n.handlePeerFetch))
	mux.Handle("GET /v1/peer/stats", n.requirePeer(n.handlePeerStats))
}

// maxHasHashes bounds one has or fetch request.
const maxHasHashes = blobstore.MaxHasHashes

// handlePeerPutBlob stores a blob pushed by a peer (identity and variants,
// verified) and answers after fsync.
func (n *Node) handlePeerPutBlob(w http.ResponseWriter, r *http.Request) {
	hash := r.PathValue("hash")
	info, err := n.blobs.Import(r.Context(), hash, r.Header.Get(blobstore.HeaderBlob), r.Body)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, blobstore.ErrHashMismatch) || errors.Is(err, blobstore.ErrInvalidHash) || errors.Is(err, blobstore.ErrMalformed) {
			status = http.StatusBadRequest
		} else if errors.Is(err, blobstore.ErrNoSpace) {
			status = http.StatusInsufficientStorage // disk full: Push reports ErrNoSpace
		}
		builder.WriteError(w, status, err.Error())
		return
	}
	builder.WriteJSON(w, http.StatusCreated, atoll.BlobResponse{Hash: info.Hash, Size: info.Size})
}

// handlePeerGetBlob sends a local blob with its variants. It never fetches
// from elsewhere: the asking node walks the sources itself.
func (n *Node) handlePeerGetBlob(w http.ResponseWriter, r *http.Request) {
	hdr, body, length, err := n.blobs.Export(r.PathValue("hash"))
	switch {
	case errors.Is(err, blobstore.ErrNotFound):
		builder.WriteError(w, http.StatusNotFound, "blob not on this node")
		return
	case errors.Is(err, blobstore.ErrInvalidHash):
		builder.WriteError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		builder.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	defer body.Close()
	w.Header().Set(blobstore.HeaderBlob, hdr)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
	w.WriteHeader(http.StatusOK)
	io.Copy(w, body)
}

// handlePeerHas answers which of the given blobs this node holds.
func (n *Node) handlePeerHas(w http.ResponseWriter, r *http.Request) {
	hashes, err := blobstore.ParseHasRequest(r.Body, maxHasHashes)
	if err != nil {
		builder.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	builder.WriteJSON(w, http.StatusOK, blobstore.HasResponse{Present: n.blobs.Present(hashes)})
}

// hashList is the body of the peer fetch and verify requests: the blobs
// to pull (repair) or to check now (a peer received a bad copy).
type hashList struct {
	Hashes []string `json:"hashes"`
}

type fetchResponse struct {
	Fetched int `json:"fetched"`
	Failed  int `json:"failed"`
}

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
	var req hashList
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

func (n *Node) fetchAll(r *http.Request, hashes []string) fetchResponse {
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
	var out fetchResponse
	for _, ok := range results {
		if ok {
			out.Fetched++
		} else {
			out.Failed++
		}
	}
	return out
}

// peerStats is what a node tells about itself for `atoll node list`.
type peerStats struct {
	ID           string              `json:"id"`
	RaftState    string              `json:"raft_state"`
	LastContact  string              `json:"last_contact,omitempty"`
	AppliedIndex uint64              `json:"applied_index"`
	CommitIndex  uint64              `json:"commit_index"`
	Blobs        int64               `json:"blobs"`
	Bytes        int64               `json:"bytes"`
	DrainLeft    int                 `json:"drain_left"`       // referenced blobs not yet confirmed on their owners
	Repair       *atoll.RepairReport `json:"repair,omitempty"` // the leader's last census
}

func (n *Node) localStats() peerStats {
	blobs, bytes := n.blobs.Usage()
	st := peerStats{
		ID:           n.cfg.ID,
		RaftState:    n.store.State(),
		AppliedIndex: n.store.AppliedIndex(),
		CommitIndex:  n.store.CommitIndex(),
		Blobs:        int64(blobs),
		Bytes:        bytes,
		DrainLeft:    n.repair.DrainLeft(),
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
