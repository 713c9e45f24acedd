package atoll

import "time"

// This file holds the JSON shapes of the HTTP API: what the builder routes
// read and write, and the status types node fills for GET /v1/status and
// GET /v1/nodes. The Go client in builder/client decodes into the same
// types, so a field changed here changes both ends at once. docs/API.md is
// the reference a user reads; keep the two in step.

// ErrorResponse is the body of every non-2xx answer. Error is one line a user
// can act on. Missing lists the blobs a finalize or publish still needs
// (409); Got and Want describe a blob upload whose content does not match
// its hash (400).
type ErrorResponse struct {
	Error   string   `json:"error"`
	Missing []string `json:"missing,omitempty"`
	Got     string   `json:"got,omitempty"`
	Want    string   `json:"want,omitempty"`
}

// CreateSiteRequest is the body of POST /v1/sites. Retain 0 means
// DefaultRetain.
type CreateSiteRequest struct {
	Name    string   `json:"name"`
	Domains []string `json:"domains,omitempty"`
	Retain  int      `json:"retain,omitempty"`
}

// UpdateSiteRequest is the body of PATCH /v1/sites/{site}. A field left out
// keeps its value; "domains": [] removes every custom domain. The limits
// (Site.MaxBytes, MaxUploading, MaxFiles) take 0 for "the cluster default".
type UpdateSiteRequest struct {
	Domains      *[]string `json:"domains,omitempty"`
	Retain       *int      `json:"retain,omitempty"`
	MaxBytes     *int64    `json:"max_bytes,omitempty"`
	MaxUploading *int      `json:"max_uploading,omitempty"`
	MaxFiles     *int      `json:"max_files,omitempty"`
	HTTPSOnly    *bool     `json:"https_only,omitempty"` // needs LevelFeatureLevels
	HSTS         *bool     `json:"hsts,omitempty"`       // needs LevelFeatureLevels
}

// SiteList is the body of GET /v1/sites, sites ordered by name.
type SiteList struct {
	Sites []Site `json:"sites"`
}

// CreateDeployRequest is the JSON body of POST /v1/sites/{site}/deploys:
// manifest path -> lowercase hex SHA-256 of the file's content.
type CreateDeployRequest struct {
	Files map[string]string `json:"files"`
}

// DeployResponse is a deploy as the API shows it. Required, present only in
// the answer to a digest-based create (as [] when nothing is needed), lists
// (sorted, unique) the blobs the cluster does not hold yet: upload them with
// PUT /v1/blobs/{hash}. URL is
// the site's live address and PreviewURL this deploy's own address
// (<id>--<site>); both are empty when the node has no SiteURL configured.
// Skipped, in the answer to a create, counts the files left out because
// they are not Published (dot-files and dot-directories); `atoll deploy`
// adds those it left out itself.
type DeployResponse struct {
	Deploy
	Required   []string `json:"required,omitzero"`
	Skipped    int      `json:"skipped,omitempty"`
	URL        string   `json:"url,omitempty"`
	PreviewURL string   `json:"preview_url,omitempty"`
	// Warnings, in the answer of the call that made the deploy ready,
	// lists the lines of _redirects and _headers that were skipped
	// ("_redirects:3: ..."), or says that the cluster's feature level is
	// too low for the rules to apply.
	Warnings []string `json:"warnings,omitempty"`
}

// RouteResponse is the body of GET /v1/deploys/{id}/route?path=P: what the
// edge does for request path P (with its query string, if any) in that
// deploy, without a request. File is the manifest path served at P before
// any rule ("" when none: then rules not forced apply). Rule is the
// _redirects rule that applies, if any, and Target its target with the
// bound values substituted. Status is the answer's status (before
// Basic-Auth, which Auth says is required). Headers are the _headers lines
// set ("Name: value"), Remove the names removed.
type RouteResponse struct {
	Deploy  string     `json:"deploy"`
	Path    string     `json:"path"`
	File    string     `json:"file,omitempty"`
	Rule    *RouteRule `json:"rule,omitempty"`
	Target  string     `json:"target,omitempty"`
	Status  int        `json:"status"`
	Auth    bool       `json:"auth,omitempty"`
	Headers []string   `json:"headers,omitempty"`
	Remove  []string   `json:"remove,omitempty"`
}

// RouteRule is a _redirects rule as RouteResponse shows it.
type RouteRule struct {
	Line   int    `json:"line"`
	From   string `json:"from"`
	To     string `json:"to"`
	Status int    `json:"status"`
	Force  bool   `json:"force,omitempty"`
}

// DeployList is the body of GET /v1/sites/{site}/deploys, newest first.
type DeployList struct {
	Deploys []DeployResponse `json:"deploys"`
}

// BlobResponse is the body of a successful PUT /v1/blobs/{hash}.
type BlobResponse struct {
	Hash string `json:"hash"`
	Size int64  `json:"size"`
}

// NodeStatus is one row of GET /v1/nodes and of Status.Nodes: the node
// table entry (its fields appear inline in the JSON: id, role, raft_addr,
// api_addr, http_addr, state, joined) plus what the answering node knows of
// it right now. RaftState is "unreachable" when the node did not answer;
// its indexes are then the last it gave the answering node, LastSeen says
// how long ago, and Lag is measured from them (a frozen node's lag grows).
type NodeStatus struct {
	Node
	Suffrage     string `json:"suffrage"`                // "voter" or "nonvoter"
	RaftState    string `json:"raft_state,omitempty"`    // "Leader", "Follower", ... when known
	LastContact  string `json:"last_contact,omitempty"`  // e.g. "120ms", as the leader sees it
	Blobs        int64  `json:"blobs"`                   // blobs stored on the node, when known
	Bytes        int64  `json:"bytes"`                   // their identity size in bytes
	AppliedIndex uint64 `json:"applied_index,omitempty"` // last Raft index the node applied
	CommitIndex  uint64 `json:"commit_index,omitempty"`  // last Raft index it knows committed
	// Lag is how many entries the node's applied index is behind
	// Status.LeaderCommit; -1 when the node never answered the answering
	// node.
	Lag      int64  `json:"lag"`
	LastSeen string `json:"last_seen,omitempty"` // when unreachable: e.g. "4s" since it last answered
	// DiskLow, when set, says why the node refuses new blobs: its disk is
	// full or below its --min-free reserve. It still serves, fetching what
	// it lacks from its peers without keeping a copy.
	DiskLow string `json:"disk_low,omitempty"`
	// Version is the release the node's binary reports, and FeatureLevel
	// the highest feature level it knows; "" and 0 when the node did not
	// answer or runs a binary from before versions were reported.
	Version      string `json:"version,omitempty"`
	FeatureLevel int    `json:"feature_level,omitempty"`
	// Stopped is why the node's replicated state stopped applying entries
	// (a storage failure, or an entry its binary does not know: it needs
	// a newer atoll), "" while it applies.
	Stopped string `json:"stopped,omitempty"`
}

// NodeList is the body of GET /v1/nodes.
type NodeList struct {
	Nodes []NodeStatus `json:"nodes"`
}

// Status is the body of GET /v1/status. RaftState uses hashicorp/raft's
// names: "Leader", "Follower", "Candidate", "Shutdown".
type Status struct {
	ID           string        `json:"id"`
	Role         string        `json:"role"`
	RaftState    string        `json:"raft_state"`
	LeaderID     string        `json:"leader_id"`
	LeaderAddr   string        `json:"leader_addr"`
	AppliedIndex uint64        `json:"applied_index"`
	CommitIndex  uint64        `json:"commit_index"`
	LeaderCommit uint64        `json:"leader_commit"` // highest commit index any node gave: the leader's, when it answered
	Nodes        []NodeStatus  `json:"nodes"`
	Sites        int           `json:"sites"`
	Version      string        `json:"version"`
	Replicas     int           `json:"replicas"`         // R: copies kept of every blob
	Repair       *RepairReport `json:"repair,omitempty"` // the leader's last repair census; absent before the first
	// CompressPending counts this node's blobs whose compressed variants
	// are still being made in the background (served uncompressed
	// meanwhile).
	CompressPending int `json:"compress_pending"`
	// Compressed counts the blobs whose variants this node made itself
	// since it started; VariantsReceived those whose variants another
	// owner made and sent it; VariantsSent the transfers of its variants
	// to other owners (one per blob and owner). A blob is compressed once
	// in a cluster at feature level 3 (LevelDeployBase).
	Compressed       int64 `json:"compressed"`
	VariantsReceived int64 `json:"variants_received"`
	VariantsSent     int64 `json:"variants_sent"`
	// FeatureLevel is the cluster's feature level (atoll.MaxFeatureLevel);
	// FeatureHeldBy names the nodes that keep it below the highest level
	// this node knows, e.g. "edge-1 (v0.10.0, level 1)".
	FeatureLevel  int      `json:"feature_level"`
	FeatureHeldBy []string `json:"feature_held_by,omitempty"`
}

// RepairReport is the result of a repair census (POST /v1/repair, and
// Status.Repair): how many referenced blobs sit on fewer than R of their
// owners, and how many are on no node at all.
type RepairReport struct {
	At              time.Time `json:"at"`
	Took            string    `json:"took"`
	Referenced      int       `json:"referenced"`       // distinct blobs referenced by retained deploys
	UnderReplicated int       `json:"under_replicated"` // on fewer than R owners after the pulls
	Missing         int       `json:"missing"`          // on no node at all
	Pulled          int       `json:"pulled"`           // copies made by this census
}

// JoinRequest is the body of POST /v1/nodes: the node to add. A node
// started with --join sends its own; `atoll node join` an operator's. Role
// defaults to "core".
type JoinRequest struct {
	ID       string `json:"id"`
	Role     string `json:"role"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	HTTPAddr string `json:"http_addr,omitempty"`
	// FeedFrom asks for a fed edge following the node of that id instead
	// of a Raft non-voter (LevelFedEdges; refused with 409 below it).
	FeedFrom string `json:"feed_from,omitempty"`
}

// JoinResponse is the answer of POST /v1/nodes: the node as the cluster
// recorded it. A new edge that joins with ?assign=1 (it can be fed) is
// made a Raft non-voter or a fed edge by the leader (docs/FANOUT.md,
// automatic assignment): for a fed edge Node.Feeder names the node it
// follows and FeederAPIAddr is that node's API address, host:port.
type JoinResponse struct {
	NodeStatus
	FeederAPIAddr string `json:"feeder_api_addr,omitempty"`
}

// DrainStatus is the body of POST and GET /v1/nodes/{id}/drain. Left
// counts the referenced blobs on the node not yet confirmed on their new
// owners; -1 until the node has finished a pass since the drain began, or
// while it cannot be reached. Done means the node holds nothing the
// cluster still needs: `atoll node remove` is then safe.
type DrainStatus struct {
	ID    string `json:"id"`
	State string `json:"state"`
	Left  int    `json:"left"`
	Done  bool   `json:"done"`
}

// CreateTokenRequest is the body of POST /v1/tokens: the site the deploy
// token is scoped to (required) and an optional name saying what it is for.
type CreateTokenRequest struct {
	Site string `json:"site"`
	Name string `json:"name,omitempty"`
}

// AdminTokenRequest is the body of PUT /v1/admin-token: the new admin
// token (CheckAdminToken). Once the cluster has applied it, every node
// takes the new token and refuses the old one.
type AdminTokenRequest struct {
	Token string `json:"token"`
}

// TokenInfo is a deploy token as GET /v1/tokens lists it. It never carries
// the secret, nor its hash.
type TokenInfo struct {
	ID      string    `json:"id"`
	Site    string    `json:"site"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// CreatedToken is the answer to POST /v1/tokens (201). Token is the secret,
// "atl_site_" and 64 hex digits: this answer is the only time it is shown,
// since the cluster stores only its SHA-256.
type CreatedToken struct {
	TokenInfo
	Token string `json:"token"`
}

// TokenList is the body of GET /v1/tokens, ordered by id.
type TokenList struct {
	Tokens []TokenInfo `json:"tokens"`
}

// PutCertRequest is the body of PUT /v1/sites/{site}/certs/{domain}: the
// certificate chain (leaf first) and the leaf's private key, both PEM.
type PutCertRequest struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// CertInfo is a domain's certificate as the API shows it: never the key.
// Names are the leaf's DNS names, Issuer its issuer's distinguished name.
type CertInfo struct {
	Domain   string    `json:"domain"`
	Site     string    `json:"site"`
	NotAfter time.Time `json:"not_after"`
	Updated  time.Time `json:"updated"`
	Names    []string  `json:"names,omitempty"`
	Issuer   string    `json:"issuer,omitempty"`
	// Source is "uploaded" (atoll cert put) or "issued" (ACME). State is
	// "valid", "expired", "pending" (being ordered, nothing issued yet) or
	// "failing" (the last order failed: Error says why, Attempts how many
	// in a row, NextRetry when it is tried again, zero while not known
	// yet); an issued certificate that is being renewed stays "valid"
	// until its renewal fails.
	Source    string    `json:"source,omitempty"`
	State     string    `json:"state,omitempty"`
	Error     string    `json:"error,omitempty"`
	Attempts  int       `json:"attempts,omitempty"`
	NextRetry time.Time `json:"next_retry,omitzero"`
}

// CertList is the body of GET /v1/sites/{site}/certs, by domain.
type CertList struct {
	Certs []CertInfo `json:"certs"`
}

// ScrubStatus is the body of POST and GET /v1/nodes/{id}/scrub: a node's
// scrub pass, running or the last one, which re-reads every blob the node
// holds and checks it against its hash. A corrupt copy is quarantined (never
// served again) and replaced from another node; Corrupt - Repaired copies
// found corrupt could not be replaced (no healthy copy reachable).
type ScrubStatus struct {
	ID       string    `json:"id"`                 // the node
	Running  bool      `json:"running"`            // the pass has not finished
	Trigger  string    `json:"trigger,omitempty"`  // "background" or "request"; "" if no pass ran since the node started
	Started  time.Time `json:"started,omitzero"`   // when the pass began
	Finished time.Time `json:"finished,omitzero"`  // when it ended, zero while running
	Rate     int64     `json:"rate"`               // the read limit, bytes per second
	Checked  int       `json:"checked"`            // blobs verified so far
	Bytes    int64     `json:"bytes"`              // bytes read so far (identity and variants)
	Corrupt  int       `json:"corrupt"`            // copies found corrupt, and quarantined
	Repaired int       `json:"repaired"`           // of those, copies replaced by a healthy one
	Unread   int       `json:"unread"`             // blobs that could not be read (I/O errors other than corruption)
	Error    string    `json:"error,omitempty"`    // why the pass stopped early, if it did
	LastPass time.Time `json:"last_pass,omitzero"` // when the last complete pass ended (it schedules the next)
}

// The wire shapes of the metadata backup endpoints, which node serves:
//
//	GET  /v1/snapshot          (admin) the answering node's state, in the
//	                           Raft snapshot format, streamed; headers
//	                           HeaderNode and HeaderAppliedIndex say which
//	                           node's state at which index it is
//	POST /v1/snapshot/restore  (admin, run on the leader) body: such a
//	                           file; answers SnapshotRestored, or 400 for a
//	                           file that is not a whole, valid snapshot
//	                           (nothing is changed then)

// Headers of a GET /v1/snapshot answer.
const (
	HeaderNode         = "X-Atoll-Node"
	HeaderAppliedIndex = "X-Atoll-Applied-Index"
)

// SnapshotContentType is the media type of a snapshot file.
const SnapshotContentType = "application/vnd.atoll.snapshot"

// SnapshotRestored is the body of a successful POST /v1/snapshot/restore.
type SnapshotRestored struct {
	// BackupIndex is the applied index recorded in the file: the metadata
	// is now what the saving node held at that index.
	BackupIndex uint64 `json:"backup_index"`
	// AppliedIndex is the Raft index the restored state stands at in this
	// cluster: a node whose applied index reached it serves the restored
	// state.
	AppliedIndex uint64 `json:"applied_index"`
	Sites        int    `json:"sites"`
	Deploys      int    `json:"deploys"`
	// TokensKept counts the deploy tokens kept from before the restore:
	// the node table, admin token, replication factor and deploy tokens
	// (of sites the file has) are the cluster's current ones, not the
	// file's.
	TokensKept int    `json:"tokens_kept"`
	Took       string `json:"took"`
}

// SiteCounts are a site's edge request and body byte counters on one node
// since that node started (GET /v1/peer/site-stats).
type SiteCounts struct {
	Requests uint64 `json:"requests"`
	Bytes    uint64 `json:"bytes"`
}

// SiteStats is the body of GET /v1/sites/{site}/stats: the site's edge
// counters summed over the nodes that answered, and each node's own.
// Counters restart from zero when a node restarts.
type SiteStats struct {
	Site string `json:"site"`
	SiteCounts
	Nodes []SiteNodeCounts `json:"nodes"`
}

// SiteNodeCounts is one node's part of SiteStats; Error says why a node
// did not answer (its counters are then not in the sum).
type SiteNodeCounts struct {
	ID string `json:"id"`
	SiteCounts
	Error string `json:"error,omitempty"`
}
