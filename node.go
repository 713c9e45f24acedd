package atoll

import "time"

// Node roles and states.
const (
	RoleCore = "core" // a Raft voter that owns blobs
	RoleEdge = "edge" // a Raft non-voter that serves from its cache

	NodeActive   = "active"
	NodeDraining = "draining" // its blobs move to their other owners
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
	// Feeder, when set, makes this a fed edge: it is not in the Raft
	// configuration and follows the committed log of the node it names
	// (docs/FANOUT.md). Written only at LevelFedEdges.
	Feeder string `json:"feeder,omitempty"`
}
