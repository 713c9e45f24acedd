package repair

import (
	"context"
	"errors"

	"github.com/atoll-hosting/atoll"
)

// Referenced returns the distinct blobs of every retained deploy that has
// not failed. A blob maps to true when only uploads in progress (deploys
// still uploading) name it: the client may not have sent it yet, or may
// have given up, so its absence from every node is no loss. An abandoned
// upload stays uploading until the leader fails it at the deploy expiry
// (node's DeployExpiry); from then on it references nothing, and its blobs
// are garbage once no other deploy names them.
func (r *Repairer) Referenced(ctx context.Context) (map[string]bool, error) {
	ref := make(map[string]bool)
	sites, err := r.meta.Sites()
	if err != nil {
		return nil, err
	}
	for _, s := range sites {
		deploys, err := r.meta.Deploys(s.Name)
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
			err := r.meta.Files(d.ID, func(f atoll.File) error {
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
