package raft

import (
	"errors"
	"time"
)

// Sentinel errors. Commands rejected by the FSM come back from Store.Apply as
// one of these (wrapped with detail); callers use errors.Is.
var (
	ErrNotFound       = errors.New("not found")
	ErrExists         = errors.New("already exists")
	ErrInvalid        = errors.New("invalid")
	ErrConflict       = errors.New("conflict")
	ErrNotLeader      = errors.New("not the raft leader")
	ErrUnknownCommand = errors.New("unknown command")
	ErrClosed         = errors.New("store closed")
)

// DefaultRetain is how many deploys a site keeps for rollback unless its
// settings say otherwise.
const DefaultRetain = 10

// MaxBatchBytes bounds the encoded size of one AddFiles command, so that a
// large manifest goes through the log as many small entries (hashicorp/raft's
// SuggestedMaxDataSize is 512 KiB).
const MaxBatchBytes = 256 << 10

// Site is a hosted website.
type Site struct {
	Name      string    `json:"name"`
	Domains   []string  `json:"domains"`             // custom domains, lowercase, no port
	Published string    `json:"published,omitempty"` // id of the live deploy, "" if none
	Created   time.Time `json:"created"`
	Retain    int       `json:"retain"` // deploys kept for rollback
}

// DeployState is where a deploy is in its life.
type DeployState string

// Deploy states: uploading -> ready -> published -> superseded (and back to
// published on rollback), or failed.
const (
	StateUploading  DeployState = "uploading"
	StateReady      DeployState = "ready"
	StatePublished  DeployState = "published"
	StateSuperseded DeployState = "superseded"
	StateFailed     DeployState = "failed"
)

// Deploy is one immutable version of a site.
type Deploy struct {
	ID          string      `json:"id"`
	Site        string      `json:"site"`
	State       DeployState `json:"state"`
	Created     time.Time   `json:"created"`
	PublishedAt time.Time   `json:"published_at,omitzero"` // last time it went live
	Files       int         `json:"files"`                 // manifest size declared at creation
	Received    int         `json:"received"`              // manifest entries stored so far
	Bytes       int64       `json:"bytes"`                 // total identity bytes, known once ready
	Reason      string      `json:"reason,omitempty"`      // why it failed, from FailDeploy
}

// File is one manifest entry: a normalized path (see CleanPath) and the
// SHA-256 of its content in lowercase hex. Size, content type and encodings
// are properties of the content and the path's extension: the blob store
// and the edge derive them, so the manifest stays 32 bytes of hash per path.
type File struct {
	Path string `json:"path"`
	Hash string `json:"hash"`
}

// Node roles and states.
const (
	RoleCore = "core"
	RoleEdge = "edge"

	NodeActive   = "active"
	NodeDraining = "draining"
	NodeRemoved  = "removed"
)

// Node is a member of the cluster as the node table records it.
type Node struct {
	ID       string    `json:"id"`
	Role     string    `json:"role"`
	RaftAddr string    `json:"raft_addr"`
	APIAddr  string    `json:"api_addr"`
	HTTPAddr string    `json:"http_addr"`
	State    string    `json:"state"`
	Joined   time.Time `json:"joined"`
}

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
// retention.
type UpdateSite struct {
	Name    string   `json:"name"`
	Domains []string `json:"domains"`
	Retain  int      `json:"retain,omitempty"`
}

// DeleteSite removes a site, its domains, deploys and manifests.
type DeleteSite struct {
	Name string `json:"name"`
}

// CreateDeploy starts a deploy in state uploading; its manifest follows in
// AddFiles batches until Received == Files.
type CreateDeploy struct {
	ID      string    `json:"id"`
	Site    string    `json:"site"`
	Files   int       `json:"files"`
	Created time.Time `json:"created"`
}

// AddFiles appends manifest entries to an uploading deploy. Re-adding a path
// with the same hash is a no-op (so a retried batch is safe); with another
// hash it is ErrConflict.
type AddFiles struct {
	Deploy string `json:"deploy"`
	Files  []File `json:"files"`
}

// MarkReady moves a complete uploading deploy to ready once the proposer has
// checked that every blob is stored. Bytes is the sum of file sizes.
type MarkReady struct {
	Deploy string `json:"deploy"`
	Bytes  int64  `json:"bytes"`
}

// Publish makes a ready, published or superseded deploy its site's live one
// (rollback is publishing an older deploy), marks the previous one
// superseded and prunes deploys beyond the site's retention.
type Publish struct {
	Deploy string    `json:"deploy"`
	At     time.Time `json:"at"`
}

// FailDeploy marks an uploading deploy failed.
type FailDeploy struct {
	Deploy string `json:"deploy"`
	Reason string `json:"reason"`
}

// PutNode adds a node to the node table or updates it.
type PutNode struct {
	Node Node `json:"node"`
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

// MaxTokenNameLen bounds a token's optional name, in bytes.
const MaxTokenNameLen = 200

// Token is a site-scoped API token as the replicated state records it. The
// secret itself is never stored: only its SHA-256, which is how a bearer
// token is looked up. The admin token is not a Token (see SetAdminToken).
type Token struct {
	ID      string    `json:"id"`             // ValidTokenID
	Site    string    `json:"site"`           // the one site the token may act on
	Name    string    `json:"name,omitempty"` // what it is for, e.g. "ci"
	Hash    string    `json:"hash"`           // lowercase hex SHA-256 of the secret
	Created time.Time `json:"created"`
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

func (CreateSite) Type() CommandType    { return CmdCreateSite }
func (UpdateSite) Type() CommandType    { return CmdUpdateSite }
func (DeleteSite) Type() CommandType    { return CmdDeleteSite }
func (CreateDeploy) Type() CommandType  { return CmdCreateDeploy }
func (AddFiles) Type() CommandType      { return CmdAddFiles }
func (MarkReady) Type() CommandType     { return CmdMarkReady }
func (Publish) Type() CommandType       { return CmdPublish }
func (FailDeploy) Type() CommandType    { return CmdFailDeploy }
func (PutNode) Type() CommandType       { return CmdPutNode }
func (RemoveNode) Type() CommandType    { return CmdRemoveNode }
func (SetAdminToken) Type() CommandType { return CmdSetAdminToken }
func (SetReplicas) Type() CommandType   { return CmdSetReplicas }
func (CreateToken) Type() CommandType   { return CmdCreateToken }
func (RevokeToken) Type() CommandType   { return CmdRevokeToken }
