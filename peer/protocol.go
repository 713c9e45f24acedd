package peer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
)

// Headers of the protocol.
const (
	// HeaderBlob carries a transfer header (blobstore.BlobHeader) on a PUT
	// request and a GET answer of BlobPath.
	HeaderBlob = "X-Atoll-Blob"
	// HeaderClusterKey carries the cluster's shared key on every peer
	// request.
	HeaderClusterKey = "X-Atoll-Cluster-Key"
	// HeaderVersion and HeaderFeatureLevel carry, on every peer request,
	// the calling node's version and the highest feature level its binary
	// knows (atoll.MaxFeatureLevel): what a join is judged by. A node from
	// before feature levels sends neither (SenderBinary).
	HeaderVersion      = "X-Atoll-Version"
	HeaderFeatureLevel = "X-Atoll-Feature-Level"
)

// SenderBinary returns the version and highest known feature level the
// sender of r announced (HeaderVersion, HeaderFeatureLevel): "" and
// atoll.LevelBase when it announced none, as a binary from before feature
// levels does.
func SenderBinary(r *http.Request) (version string, level int) {
	level, err := strconv.Atoi(r.Header.Get(HeaderFeatureLevel))
	if err != nil || level < atoll.LevelBase {
		level = atoll.LevelBase
	}
	return r.Header.Get(HeaderVersion), level
}

// Paths of the endpoints, as net/http patterns (see the package doc).
const (
	BlobPath   = "/v1/peer/blobs/{hash}" // PathValue("hash") is the blob's name
	HasPath    = "/v1/peer/has"
	ApplyPath  = "/v1/peer/apply"
	FetchPath  = "/v1/peer/fetch"
	StatsPath  = "/v1/peer/stats"
	ScrubPath  = "/v1/peer/scrub"
	VerifyPath = "/v1/peer/verify"
	MemberPath = "/v1/peer/member/{id}" // PathValue("id") is the node asked about
	// SiteStatsPath answers the node's atoll.SiteCounts of the site named
	// by the query parameter "site".
	SiteStatsPath = "/v1/peer/site-stats"
	JoinPath      = "/v1/nodes" // also an admin route: the cluster key stands in for the token
)

// MemberResponse answers a GET of MemberPath: whether the node table of
// the answering node's replicated state, as applied up to at least
// AppliedIndex, lists node ID as a member (not removed). A node that
// applied entry i has applied every entry before it, so an answer of
// Member false with an AppliedIndex at or past the asker's own is proof
// that the asker was removed (it was in its own table, at its own index).
type MemberResponse struct {
	ID           string `json:"id"`
	Member       bool   `json:"member"`
	AppliedIndex uint64 `json:"applied_index"`
}

// MaxHasHashes bounds the hashes of one HasRequest or fetch HashList;
// Client.Has splits longer lists.
const MaxHasHashes = 10000

// HasRequest is the body of a POST to HasPath.
type HasRequest struct {
	Hashes []string `json:"hashes"`
}

// HasResponse answers a HasRequest: the blobs among those asked for that the
// node holds, with their sizes (of the identity bytes).
type HasResponse struct {
	Present map[string]int64 `json:"present"`
}

// PushResponse answers a PUT to BlobPath once the blob is durable. It is
// the same JSON as atoll.BlobResponse.
type PushResponse = atoll.BlobResponse

// HashList is the body of a POST to FetchPath or VerifyPath: the blobs to
// pull (repair) or to check now (a peer received a bad copy).
type HashList struct {
	Hashes []string `json:"hashes"`
}

// FetchResponse answers a POST to FetchPath: how many of the blobs arrived.
type FetchResponse struct {
	Fetched int `json:"fetched"`
	Failed  int `json:"failed"`
}

// ApplyResponse answers a POST to ApplyPath: the index of the command in
// the Raft log, which the forwarding node waits to have applied.
type ApplyResponse struct {
	Index uint64 `json:"index"`
}

// Stats answers a GET of StatsPath: what a node tells about itself for
// `atoll node list`, drain progress and readiness.
type Stats struct {
	ID           string              `json:"id"`
	RaftState    string              `json:"raft_state"`
	LastContact  string              `json:"last_contact,omitempty"`
	AppliedIndex uint64              `json:"applied_index"`
	CommitIndex  uint64              `json:"commit_index"`
	Blobs        int64               `json:"blobs"`
	Bytes        int64               `json:"bytes"`
	DrainLeft    int                 `json:"drain_left"`         // referenced blobs not yet confirmed on their owners
	DiskLow      string              `json:"disk_low,omitempty"` // why the node refuses new blobs (its disk below --min-free), "" when it does not
	Repair       *atoll.RepairReport `json:"repair,omitempty"`   // the leader's last census
	// Version is the node's version, FeatureLevel the highest feature
	// level its binary knows; a node from before feature levels sends
	// neither (Binary).
	Version      string `json:"version,omitempty"`
	FeatureLevel int    `json:"feature_level,omitempty"`
	// ClusterLevel is the cluster's feature level in the node's
	// replicated state (absent from older nodes: below every level that
	// needs it); a new edge reads it from its feeder before it follows
	// one (--feed-from).
	ClusterLevel int `json:"cluster_level,omitempty"`
	// Stopped is why the node's replicated state stopped applying entries
	// (a storage failure, or an entry its binary does not know), "" when
	// it applies.
	Stopped string `json:"stopped,omitempty"`
}

// Binary returns what st says of the node's binary: its version ("" when
// not reported) and the highest feature level it knows, atoll.LevelBase
// for a node from before feature levels.
func (st Stats) Binary() (version string, level int) {
	return st.Version, max(st.FeatureLevel, atoll.LevelBase)
}

// ErrorBody is the body of every non-2xx answer: the error's message and,
// on ApplyPath, the kind of rejection (see KindOf).
type ErrorBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind,omitempty"`
}

// maxHasRequestBytes bounds the body of a HasRequest of max hashes: each
// hash takes 64 bytes, its quotes and a comma, plus room for white space.
func maxHasRequestBytes(maxHashes int) int64 { return int64(maxHashes)*80 + 1024 }

// ParseHasRequest reads a HasRequest from r and returns its hashes, in the
// order sent. It fails with an error wrapping blobstore.ErrMalformed when
// the body is not exactly one HasRequest JSON object (unknown fields
// included), is bigger than maxHashes hashes can take, or lists more than
// maxHashes; and with blobstore.ErrInvalidHash when a hash is not a valid
// name. It reads at most about 80 bytes per allowed hash from r.
func ParseHasRequest(r io.Reader, maxHashes int) ([]string, error) {
	limit := maxHasRequestBytes(maxHashes)
	lr := &io.LimitedReader{R: r, N: limit + 1}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	var req HasRequest
	err := dec.Decode(&req)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("data after the request object")
	}
	if lr.N <= 0 {
		return nil, fmt.Errorf("has request: more than %d bytes: %w", limit, blobstore.ErrMalformed)
	}
	if err != nil {
		return nil, fmt.Errorf("has request: %v: %w", err, blobstore.ErrMalformed)
	}
	if len(req.Hashes) > maxHashes {
		return nil, fmt.Errorf("has request: %d hashes, at most %d allowed: %w", len(req.Hashes), maxHashes, blobstore.ErrMalformed)
	}
	for _, h := range req.Hashes {
		if !atoll.ValidHash(h) {
			return nil, fmt.Errorf("has request: %.80q: %w", h, blobstore.ErrInvalidHash)
		}
	}
	return req.Hashes, nil
}

// blobURL returns the URL of a (valid) blob on the peer at baseURL.
func blobURL(baseURL, hash string) string {
	return endpoint(baseURL, strings.Replace(BlobPath, "{hash}", hash, 1))
}

// endpoint returns the URL of path on the peer at baseURL.
func endpoint(baseURL, path string) string { return strings.TrimRight(baseURL, "/") + path }
