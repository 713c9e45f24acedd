package raft

import (
	"errors"
	"fmt"
	"time"

	"github.com/atoll-hosting/atoll"
)

// Sentinel errors of the store. Commands the FSM rejects come back from
// Store.Apply wrapping one of atoll's (ErrInvalid, ErrNotFound, ErrExists,
// ErrConflict) with detail; callers use errors.Is.
var (
	ErrNotLeader      = errors.New("not the raft leader")
	ErrUnknownCommand = errors.New("unknown command")
	ErrClosed         = fmt.Errorf("store closed: %w", atoll.ErrUnavailable)
	// ErrStorage: the FSM could not write what it applied (a full disk,
	// an I/O error). The node stops applying and refuses writes until it
	// is restarted with the fault fixed; see FSM.StorageFailed.
	ErrStorage = fmt.Errorf("raft state storage failed: %w", atoll.ErrUnavailable)
	// ErrNeedsUpgrade: the log holds an entry this binary does not know,
	// written by a newer leader. The node stops applying there, as on
	// ErrStorage (never skipping the entry, never applying half of it),
	// and fails readiness until it runs a binary that knows the entry.
	ErrNeedsUpgrade = fmt.Errorf("raft log needs a newer atoll: %w", atoll.ErrUnavailable)
)

// MaxBatchBytes bounds the encoded size of one AddFiles command, so that a
// large manifest goes through the log as many small entries (hashicorp/raft's
// SuggestedMaxDataSize is 512 KiB).
const MaxBatchBytes = 256 << 10

// Command is a replicated state change. Every command carries the values it
// needs (ids, timestamps) so that applying it is deterministic, and applying
// the same command twice has the same effect as once where the FSM can tell.
type Command interface {
	Type() CommandType
}

// CommandType identifies a command on the wire. Values never change meaning;
// new commands get new numbers.
type CommandType uint8

// Command types.
const (
	CmdCreateSite    CommandType = 1
	CmdUpdateSite    CommandType = 2
	CmdDeleteSite    CommandType = 3
	CmdCreateDeploy  CommandType = 4
	CmdAddFiles      CommandType = 5
	CmdMarkReady     CommandType = 6
	CmdPublish       CommandType = 7
	CmdFailDeploy    CommandType = 8
	CmdPutNode       CommandType = 9
	CmdRemoveNode    CommandType = 10
	CmdSetAdminToken CommandType = 11
	CmdSetReplicas   CommandType = 12
	CmdCreateToken   CommandType = 13
	CmdRevokeToken   CommandType = 14
	CmdPutCert       CommandType = 15 // see certs.go
	CmdDeleteCert    CommandType = 16
	// CmdSetFeatureLevel and later types are written only once the
	// cluster's feature level says every node knows them
	// (atoll.LevelFeatureLevels, for 17, 20-23 and 25).
	CmdSetFeatureLevel CommandType = 17
	// The ACME store (acme.go): level atoll.LevelFeatureLevels.
	CmdPutACME    CommandType = 20
	CmdDeleteACME CommandType = 21
	CmdLockACME   CommandType = 22
	CmdUnlockACME CommandType = 23
	CmdLockSite   CommandType = 25
)

// CreateSite adds a site. Fails with ErrExists if the name is taken, or
// ErrConflict if a domain belongs to another site.
type CreateSite struct {
	Name    string    `json:"name"`
	Domains []string  `json:"domains,omitempty"`
	Retain  int       `json:"retain,omitempty"` // 0 means DefaultRetain
	Created time.Time `json:"created"`
}

// UpdateSite replaces a site's custom domains and, when Retain > 0, its
// retention. Each limit, when not nil, replaces the site's (0: back to the
// cluster default); nil keeps it, so a command without them (as every
// UpdateSite written before they existed) leaves the limits alone. So do
// HTTPSOnly and HSTS, which a leader writes only once the cluster is at
// atoll.LevelFeatureLevels (an older node would drop them).
type UpdateSite struct {
	Name         string   `json:"name"`
	Domains      []string `json:"domains"`
	Retain       int      `json:"retain,omitempty"`
	MaxBytes     *int64   `json:"max_bytes,omitempty"`
	MaxUploading *int     `json:"max_uploading,omitempty"`
	MaxFiles     *int     `json:"max_files,omitempty"`
	HTTPSOnly    *bool    `json:"https_only,omitempty"`
	HSTS         *bool    `json:"hsts,omitempty"`
}

// LockSite pins (Locked) or unpins a site's live deploy: while locked,
// Publish of any deploy of the site is refused with ErrConflict; previews
// are unaffected. Setting the state it already has is a no-op. Written
// only at atoll.LevelFeatureLevels.
type LockSite struct {
	Name   string `json:"name"`
	Locked bool   `json:"locked"`
}

// DeleteSite removes a site, its domains, deploys and manifests.
type DeleteSite struct {
	Name string `json:"name"`
}

// CreateDeploy starts a deploy in state uploading; its manifest follows in
// AddFiles batches until Received == Files.
//
// With Base (atoll.LevelDeployBase), the new deploy's manifest starts as a
// copy of the base deploy's, made by the FSM in the same apply on every
// node, less the paths in Remove; Received starts at the entries copied,
// and only the entries that differ from the base follow in AddFiles. Files
// is the size of the whole new manifest, as without a base. The base must
// be a ready, published or superseded deploy of the same site, present
// when the command applies (one pruned or failed since the proposer read
// it is refused with ErrConflict: propose again without a base); Remove
// lists paths of the base's manifest, sorted, each once, and must fit in
// one command (MaxCommandBytes) with the rest. Below
// atoll.LevelDeployBase the FSM ignores Base and Remove, as older nodes
// (which drop the fields) do, and the deploy starts empty.
type CreateDeploy struct {
	ID      string    `json:"id"`
	Site    string    `json:"site"`
	Files   int       `json:"files"`
	Created time.Time `json:"created"`
	// Message is the deploy's message (atoll.CheckMessage); written only
	// at atoll.LevelFeatureLevels.
	Message string `json:"message,omitempty"`
	// MaxUploading, when positive, is the site's limit of deploys in state
	// uploading: the command is refused (atoll.ErrLimit) when the site has
	// that many already, which makes the limit hold across the API nodes
	// that propose creates at once. It belongs to
	// atoll.LevelFeatureLevels: below that level the FSM ignores it, as
	// older nodes (which drop the field) do.
	MaxUploading int `json:"max_uploading,omitempty"`
	// Base is the id of the deploy whose manifest the new one starts
	// from; "" for none.
	Base string `json:"base,omitempty"`
	// Remove lists the base's paths the new manifest leaves out: those
	// deleted, and those whose content changed (their new entry follows
	// in AddFiles).
	Remove []string `json:"remove,omitempty"`
}

// AddFiles appends manifest entries to an uploading deploy. Re-adding a path
// with the same hash is a no-op (so a retried batch is safe); with another
// hash it is ErrConflict.
type AddFiles struct {
	Deploy string       `json:"deploy"`
	Files  []atoll.File `json:"files"`
}

// MarkReady moves a complete uploading deploy to ready once the proposer has
// checked that every blob is stored. Bytes is the sum of file sizes.
// Rules, when set, is the deploy's compiled _redirects and _headers
// (siterules.Encode), which the FSM keeps beside the deploy and names in
// Deploy.Rules; written only at atoll.LevelFeatureLevels (an older node
// would drop it and serve the rule files as plain files).
type MarkReady struct {
	Deploy string `json:"deploy"`
	Bytes  int64  `json:"bytes"`
	Rules  []byte `json:"rules,omitempty"`
}

// Publish makes a ready, published or superseded deploy its site's live one
// (rollback is publishing an older deploy), marks the previous one
// superseded and prunes deploys beyond the site's retention.
type Publish struct {
	Deploy string    `json:"deploy"`
	At     time.Time `json:"at"`
}

// FailDeploy marks an uploading deploy failed. With DropFiles the failed
// deploy's manifest is emptied in the same command (also for a deploy that
// failed earlier), so its entries leave the state at once instead of at
// the next prune; the record stays, with its reason. DropFiles belongs to
// atoll.LevelFeatureLevels: written only at that level (an older node
// would drop the field and keep the manifest), and ignored by the FSM below
// it, so nodes of every version agree. FailDeployCmd sets it.
type FailDeploy struct {
	Deploy    string `json:"deploy"`
	Reason    string `json:"reason"`
	DropFiles bool   `json:"drop_files,omitempty"`
}

// FailDeployCmd is the FailDeploy to propose in a cluster at feature level
// level: it drops the manifest from atoll.LevelFeatureLevels on.
func FailDeployCmd(level int, deploy, reason string) FailDeploy {
	return FailDeploy{Deploy: deploy, Reason: reason, DropFiles: level >= atoll.LevelFeatureLevels}
}

// PutNode adds a node to the node table or updates it.
type PutNode struct {
	Node atoll.Node `json:"node"`
}

// RemoveNode takes a node out of the node table.
type RemoveNode struct {
	ID string `json:"id"`
}

// SetAdminToken records the SHA-256 (hex) of the cluster's admin token, so
// every node can check a bearer token without holding the secret itself.
type SetAdminToken struct {
	Hash string `json:"hash"`
}

// SetReplicas sets the cluster's replication factor R: how many core nodes
// own each blob. It is replicated so that every node computes the same
// owners.
type SetReplicas struct {
	N int `json:"n"`
}

// SetFeatureLevel raises the cluster's feature level (see
// atoll.MaxFeatureLevel). The leader proposes it once every node reports a
// binary that knows the level. A level below the current one, or above
// what this binary knows, is refused: levels never go down.
type SetFeatureLevel struct {
	Level int `json:"level"`
}

// CreateToken records a deploy token scoped to one existing site. The id is
// chosen by the proposer, so a retry of the very same command is a no-op;
// any other CreateToken of an existing id is ErrExists, and a hash already
// recorded for another token is ErrConflict.
type CreateToken struct {
	ID      string    `json:"id"`
	Site    string    `json:"site"`
	Name    string    `json:"name,omitempty"`
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
}

// RevokeToken deletes a token; requests carrying it are refused from the
// moment a node has applied this. ErrNotFound if there is no such token.
// DeleteSite revokes the site's tokens itself.
type RevokeToken struct {
	ID string `json:"id"`
}

func (CreateSite) Type() CommandType      { return CmdCreateSite }
func (UpdateSite) Type() CommandType      { return CmdUpdateSite }
func (DeleteSite) Type() CommandType      { return CmdDeleteSite }
func (CreateDeploy) Type() CommandType    { return CmdCreateDeploy }
func (AddFiles) Type() CommandType        { return CmdAddFiles }
func (MarkReady) Type() CommandType       { return CmdMarkReady }
func (Publish) Type() CommandType         { return CmdPublish }
func (FailDeploy) Type() CommandType      { return CmdFailDeploy }
func (PutNode) Type() CommandType         { return CmdPutNode }
func (RemoveNode) Type() CommandType      { return CmdRemoveNode }
func (SetAdminToken) Type() CommandType   { return CmdSetAdminToken }
func (SetReplicas) Type() CommandType     { return CmdSetReplicas }
func (CreateToken) Type() CommandType     { return CmdCreateToken }
func (RevokeToken) Type() CommandType     { return CmdRevokeToken }
func (SetFeatureLevel) Type() CommandType { return CmdSetFeatureLevel }
func (LockSite) Type() CommandType        { return CmdLockSite }
