package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/raft"
)

// Deploy expiry: a deploy still uploading DeployExpiry after its creation
// is abandoned (its client gave up, or never meant to finish). The leader
// fails it with FailDeploy, saying why; from then on its manifest no longer
// holds its blobs (repair.Referenced skips failed deploys), so garbage
// collection frees them after GCGrace, and it no longer counts against its
// site's deploys in progress (builder's --site-max-uploading).

// expireInterval is how often the leader looks for expired deploys: a
// quarter of the expiry, between a second and a minute, so a deploy fails
// at most that long after it expired.
func expireInterval(expiry time.Duration) time.Duration {
	return min(max(expiry/4, time.Second), time.Minute)
}

// expired returns the deploys of ds still uploading at now, expiry after
// they were created.
func expired(ds []atoll.Deploy, now time.Time, expiry time.Duration) []atoll.Deploy {
	var out []atoll.Deploy
	for _, d := range ds {
		if d.State == atoll.StateUploading && now.Sub(d.Created) >= expiry {
			out = append(out, d)
		}
	}
	return out
}

// expiryReason is the failed deploy's reason.
func expiryReason(expiry time.Duration) string {
	return fmt.Sprintf("expired: still uploading %s after it was created (--deploy-expiry); create a new deploy", expiry)
}

// expireLoop fails expired deploys while this node leads, until the node
// closes.
func (n *Node) expireLoop() {
	t := time.NewTicker(expireInterval(n.cfg.DeployExpiry))
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if !n.store.IsLeader() {
			continue
		}
		if err := n.expireDeploys(n.ctx, time.Now()); err != nil && n.ctx.Err() == nil {
			n.log.Warn("expire deploys", "err", err)
		}
	}
}

// expireDeploys fails every deploy expired at now. A deploy that finished
// meanwhile (FailDeploy answers ErrConflict) is left as it is.
func (n *Node) expireDeploys(ctx context.Context, now time.Time) error {
	sites, err := n.store.Sites()
	if err != nil {
		return err
	}
	for _, s := range sites {
		ds, err := n.store.Deploys(s.Name)
		if errors.Is(err, atoll.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		for _, d := range expired(ds, now, n.cfg.DeployExpiry) {
			err := n.store.Apply(ctx, raft.FailDeploy{Deploy: d.ID, Reason: expiryReason(n.cfg.DeployExpiry)})
			switch {
			case errors.Is(err, atoll.ErrConflict), errors.Is(err, atoll.ErrNotFound):
				continue
			case err != nil:
				return fmt.Errorf("fail deploy %s: %w", d.ID, err)
			}
			n.log.Info("deploy expired", "site", d.Site, "deploy", d.ID, "created", d.Created, "received", d.Received, "files", d.Files)
		}
	}
	return nil
}
