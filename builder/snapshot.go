package builder

// Wire shapes of the metadata backup endpoints, which node serves:
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
