package atoll

import (
	"fmt"
	"strings"
)

// Feature levels. A cluster runs at one feature level, kept in the
// replicated state and raised by the leader once every node of the cluster
// (voters and edges) runs a binary that knows the next one. A command type,
// or a field whose meaning an older node would get wrong, is written only
// once the cluster has reached the level that introduced it; until then the
// API answers 409 with the nodes that hold it back (FeatureError).
//
// Levels only ever go up, and each binary knows every level up to
// MaxFeatureLevel. A new level is added at the end with the features it
// brings; a level's meaning never changes.
const (
	// LevelBase is every cluster before feature levels existed: its state
	// records no level.
	LevelBase = 1
	// LevelFeatureLevels brings the SetFeatureLevel command itself, the
	// per-site HTTPS settings (Site.HTTPSOnly, Site.HSTS),
	// raft.FailDeploy's DropFiles (a failed deploy's manifest goes at once),
	// site rules: MarkReady's compiled _redirects and _headers
	// (raft.MarkReady.Rules, Deploy.Rules), below which the two files are
	// served as plain files, deploy messages (raft.CreateDeploy.Message,
	// Deploy.Message), site locks (the LockSite command, Site.Locked),
	// raft.CreateDeploy's MaxUploading (the FSM holds a site to its limit
	// of deploys uploading, across the API nodes), and the ACME store's
	// commands (raft's PutACME, DeleteACME, LockACME, UnlockACME).
	// A node whose binary knows less than the cluster's level is refused
	// at join.
	LevelFeatureLevels = 2
	// LevelDeployBase brings deploys made from a base deploy
	// (raft.CreateDeploy's Base and Remove, Deploy.Base: the new deploy's
	// manifest starts as a copy of the base's less Remove, and only the
	// difference travels through Raft), and blobs compressed once in the
	// cluster: one owner sends the variants it made to the other holders
	// (the peer call PUT /v1/peer/variants/{hash}, which an older node
	// answers 404); below this level every node compresses its own copy.
	LevelDeployBase = 3
	// LevelFedEdges brings edges fed by relays: Node.Feeder in the node
	// table (a fed edge, not in the Raft configuration, that follows the
	// log of the node it names through GET /v1/peer/log) and the join
	// request's feed_from. Below it `atoll server --feed-from` is refused
	// and the edge joins as a Raft non-voter.
	LevelFedEdges = 4
	// LevelCompactManifests brings compact manifests: a deploy created
	// with at most raft's compactMaxFiles files keeps its manifest as one
	// value (paths front-coded, each content hash a small id interned in
	// a table of the blobs manifests name) instead of a bbolt bucket of
	// its own (raft's DESIGN.md, "FSM layout"). Below this level every
	// manifest is written as a bucket; every reader reads both.
	LevelCompactManifests = 5
	// LevelVariantBatches brings batches of compressed variants: the
	// owner that compresses blobs for the cluster sends the variants of
	// many blobs to each other holder in one request (the peer call POST
	// /v1/peer/variants, which an older node answers 404), received with
	// one group commit. Below it each blob's variants travel alone (PUT
	// /v1/peer/variants/{hash}).
	LevelVariantBatches = 6

	// MaxFeatureLevel is the highest level this binary knows.
	MaxFeatureLevel = LevelVariantBatches
)

// FeatureError is why a call that needs a feature level the cluster has
// not reached was refused. It wraps ErrConflict (HTTP 409).
type FeatureError struct {
	Feature string   // what was asked for, e.g. "--https-only"
	Need    int      // the level it needs
	Have    int      // the cluster's level
	HeldBy  []string // nodes that hold the cluster back, e.g. "edge-1 (dev, level 1)"
}

func (e *FeatureError) Error() string {
	msg := fmt.Sprintf("%s needs cluster feature level %d; the cluster is at %d", e.Feature, e.Need, e.Have)
	if len(e.HeldBy) > 0 {
		msg += " until every node runs a newer atoll; held back by: " + strings.Join(e.HeldBy, ", ")
	}
	return msg
}

func (e *FeatureError) Unwrap() error { return ErrConflict }
