package node

import (
	"errors"
	"fmt"
	"strings"

	"github.com/atoll-hosting/atoll/blobstore"
)

// Disk full. The blob store refuses writes with blobstore.ErrNoSpace when
// its disk is full or below MinFreeBytes (blobstore/space.go); what node
// adds:
//
//   - an upload refused by this node's disk names the node (the builder
//     API answers 507 Insufficient Storage with the message);
//   - a push to an owner whose disk is full is answered 507 by the owner
//     (peer.PutBlobHandler) and counts as a failed copy; an upload that reaches fewer
//     than a majority of its owners fails, with 507 when a full disk was
//     among the reasons, else 503 (builder.ErrUnavailable);
//   - a blob uploaded through a node below its reserve is relayed from
//     memory to its other owners (blobs.go, relay), and a blob it lacks
//     is served from memory, never written (fetch.go, passThrough);
//   - the node reports it (diskLow): /readyz stays 200 with "degraded",
//     peer stats and /v1/status carry disk_low;
//   - reads never need space: the edge keeps serving what the node holds,
//     and a full node recovers by itself when space returns (the check is
//     made afresh for every write).

// spaceLow returns why this node refuses new blobs (its disk is full or
// below MinFreeBytes), wrapping blobstore.ErrNoSpace, or nil when it takes
// them.
func (n *Node) spaceLow() error {
	if err := n.blobs.RoomFor(n.blobs.Dir(), 0); err != nil {
		return n.noSpaceHere(err)
	}
	return nil
}

// diskLow is spaceLow's message, "" when there is room.
func (n *Node) diskLow() string {
	if err := n.spaceLow(); err != nil {
		return err.Error()
	}
	return ""
}

// noSpaceHere names this node in a local blob store refusal.
func (n *Node) noSpaceHere(err error) error {
	if errors.Is(err, blobstore.ErrNoSpace) {
		return fmt.Errorf("node %s: %w", n.cfg.ID, err)
	}
	return err
}

// joinedErrors is errors.Join on one line ("; "): its message reaches API
// answers and the CLI's one-line errors.
type joinedErrors []error

func (j joinedErrors) Error() string {
	msgs := make([]string, len(j))
	for i, e := range j {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

func (j joinedErrors) Unwrap() []error { return j }
