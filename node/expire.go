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
// site's deploys in progress (builder's --site-max-uploading). From
// feature level atoll.LevelFeatureLevels on, the same command empties the
// manifest (raft.FailDeployCmd), so the raft state gives its room back at
// once, and the leader also empties the manifests of deploys that failed
// before the cluster reached that level.

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

// heldFailed returns the failed deploys of ds whose manifest still holds
// entries: failed before the cluster reached atoll.LevelFeatureLevels.
func heldFailed(ds []atoll.Deploy) []atoll.Deploy {
	var out []atoll.Deploy
	for _, d := range ds {
		if d.State == atoll.StateFailed && d.Received > 0 {
			out = append(out, d)
		}
	}
	return out
}

// expireDeploys fails every deploy expired at now and, at a feature level
// that allows it, empties the manifests failed deploys still hold. A deploy
// that finished meanwhile (FailDeploy answers ErrConflict) is left as it is.
// It reads only the deploys the FSM keeps for it (raft.FSM.ExpiryCandidates:
// uploading, or failed holding entries), not every site's.
func (n *Node) expireDeploys(ctx context.Context, now time.Time) error {
	level := n.store.FeatureLevel()
	reason := expiryReason(n.cfg.DeployExpiry)
	ds := n.store.ExpiryCandidates()
	fail := expired(ds, now, n.cfg.DeployExpiry)
	if level >= atoll.LevelFeatureLevels {
		fail = append(fail, heldFailed(ds)...)
	}
	for _, d := range fail {
		err := n.store.Apply(ctx, raft.FailDeployCmd(level, d.ID, reason))
		switch {
		case errors.Is(err, atoll.ErrConflict), errors.Is(err, atoll.ErrNotFound):
			continue
		case err != nil:
			return fmt.Errorf("fail deploy %s: %w", d.ID, err)
		}
		msg := "deploy expired"
		if d.State == atoll.StateFailed {
			msg = "failed deploy's manifest emptied"
		}
		n.log.Info(msg, "site", d.Site, "deploy", d.ID, "created", d.Created, "received", d.Received, "files", d.Files)
	}
	return nil
}
