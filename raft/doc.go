// Package raft owns Atoll's replicated metadata: sites, deploys and their
// manifests (the types of package atoll), the custom-domain index, the node table, the admin token hash
// and the site-scoped deploy tokens (their hashes only). It wraps hashicorp/raft (log and stable store in raft-boltdb,
// snapshots in files, a TCP transport) around an FSM whose state lives in
// bbolt on disk, so a node holds millions of manifest entries without
// holding them in memory.
//
// # Writing
//
// A change is a Command (types.go), built by the proposer with every value
// it needs (ids, timestamps), encoded by Encode as one version byte, one
// CommandType byte and JSON, and replicated with Store.Apply on the leader.
// Off the leader Apply fails with ErrNotLeader; the caller forwards to
// LeaderID's node. Commands the FSM refuses come back as errors wrapping
// ErrInvalid, ErrNotFound, ErrExists or ErrConflict, with a message a user
// can act on. Manifests travel as AddFiles batches from BatchFiles, each
// under MaxBatchBytes, never as one giant entry; from
// atoll.LevelDeployBase a CreateDeploy may name a base deploy whose
// manifest the FSM copies into the new one, so that only the entries that
// differ travel.
//
// When Apply fails with leadership lost, or its context ends, the outcome
// is unknown. Commands are made so that resending the same one is safe:
// CreateSite, CreateDeploy, AddFiles, MarkReady, Publish, FailDeploy and
// CreateToken treat an identical repeat as a no-op. FailDeployCmd builds
// the FailDeploy for the cluster's level (from level 2 it also empties the
// failed deploy's manifest).
//
// # Reading
//
// Store embeds *FSM: Site, Sites, SiteByDomain, Deploy, Deploys,
// SitePublished, File, Files, Nodes, AdminTokenHash, TokenByHash, Tokens.
// Each runs one short bbolt read transaction and returns copies;
// SitePublished is the edge's resolution of a host (a site and its
// published deploy in one transaction, not two); File, on the serving path, is
// a few lookups (a compact manifest, from atoll.LevelCompactManifests, is
// decoded up to the path: at most compactMaxFiles entries). The whole-catalog reads a platform of 100,000 sites needs
// walk the tables directly in short transactions instead of a read per
// site: ReferencedBlobs (repair's census and GC), CertExpiries (metrics).
// Those a node makes on a timer or per API call read counts the FSM keeps
// in memory (counts.go: computed with one walk when it opens or restores,
// then moved in the commit of each write): SiteCount (GET /v1/status),
// DeployCounts (metrics), ExpiryCandidates (the leader's deploy expiry).
// RestoredAt tells a reader of the Raft configuration whether raft may
// not yet have installed the configuration of a snapshot just restored.
// PublishedSince is an in-memory feed of the deploys applied Publish
// commands made live (not part of the state: empty after a start or a
// restore, when the reader rescans the sites), which an edge's prefetch
// follows. Reads are local: on a follower or an edge they may lag the
// leader by the replication delay (compare AppliedIndex with the leader's
// CommitIndex, or use WaitApplied).
//
// # Fed edges
//
// OpenFollower opens a Store without hashicorp/raft for a fed edge
// (docs/FANOUT.md): its FSM moves only by ApplyFeed, which checks that a
// frame of committed entries continues exactly the entry the state holds
// (index and term, consecutive indexes, terms that never decrease) before
// FSM.ApplyBatch, and by RestoreFeed (a feeder's snapshot, checked whole).
// The reads are a Store's; writes and membership changes fail with
// ErrNotLeader, so the node forwards them; Servers is empty. On a Raft
// member, FeedFrom reads the entries a fed edge asks for from the log
// (ErrCompacted when the log no longer holds the start).
//
// # Changing the formats
//
// Commands, stored records, buckets and snapshots are read by nodes of
// other versions during an upgrade. A new command type, or a field an
// older node would get wrong, is written only once the cluster's feature
// level (FSM.FeatureLevel, raised by SetFeatureLevel) has reached the level
// that brings it; state from a newer atoll (a level above
// atoll.MaxFeatureLevel, a newer snapshot format) is refused whole, with a
// NewerStateError, when a node opens or restores it. DESIGN.md, "Changing
// the replicated formats", has the rules.
//
// # What this package must never do
//
//   - apply a log entry twice, or count one as applied that the state does
//     not contain (the applied index is written in the same bbolt
//     transaction as the changes; after a storage failure the FSM applies
//     nothing more, takes no snapshot and the Store proposes nothing, until
//     a restart replays the log: FSM.StorageFailed);
//   - let hashicorp/raft resume after a snapshot that the FSM on disk does
//     not contain (Open restores it first);
//   - leave a half-restored state (restores build a new file and rename it);
//   - depend on anything but the state and the command while applying
//     (clocks, randomness, map order, configuration), or every node would
//     not reach the same state;
//   - know about HTTP, blobs or placement: it stores what it is told.
//
// DESIGN.md next to this file has the invariants and the reasons.
package raft
