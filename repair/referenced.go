package repair

import (
	"context"
	"errors"

	"github.com/atoll-hosting/atoll"
)

// referencedLister is a Meta that lists the referenced blobs itself, in one
// walk of its storage (raft.FSM.ReferencedBlobs), with the meaning of
// Referenced.
type referencedLister interface {
	ReferencedBlobs(ctx context.Context) (map[string]bool, error)
}

// Referenced returns the distinct blobs of every retained deploy that has
// not failed. A blob maps to true when only uploads in progress (deploys
// still uploading) name it: the client may not have sent it yet, or may
// have given up, so its absence from every node is no loss. An abandoned
// upload stays uploading until the leader fails it at the deploy expiry
// (node's DeployExpiry); from then on it references nothing, and its blobs
// are garbage once no other deploy names them.
//
// A Meta that is a referencedLister answers in one walk of its storage;
// any other is asked site by site, deploy by deploy (WalkReferenced).
func (r *Repairer) Referenced(ctx context.Context) (map[string]bool, error) {
	if l, ok := r.meta.(referencedLister); ok {
		return l.ReferencedBlobs(ctx)
	}
	return WalkReferenced(ctx, r.meta)
}

// WalkReferenced is Referenced through Meta's listing methods: Sites, each
// site's Deploys, each deploy's Files.
func WalkReferenced(ctx context.Context, meta Meta) (map[string]bool, error) {
	ref := make(map[string]bool)
	sites, err := meta.Sites()
	if err != nil {
		return nil, err
	}
	for _, s := range sites {
		deploys, err := meta.Deploys(s.Name)
		if errors.Is(err, atoll.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		for _, d := range deploys {
			if d.State == atoll.StateFailed {
				continue
			}
			pending := d.State == atoll.StateUploading
			err := meta.Files(d.ID, func(f atoll.File) error {
				if onlyPending, seen := ref[f.Hash]; !seen || onlyPending {
					ref[f.Hash] = pending
				}
				return ctx.Err()
			})
			if err != nil && !errors.Is(err, atoll.ErrNotFound) {
				return nil, err
			}
		}
	}
	return ref, nil
}
