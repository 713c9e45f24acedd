package builder

import (
	"context"
	"net/http"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/raft"
)

// pipelineWindow bounds how many manifest batches (each up to
// raft.MaxBatchBytes) are in flight in one pipelined apply.
const pipelineWindow = 8

// pipelinedApplier is implemented by a Meta that can replicate several
// commands in one round (node: raft.Store.ApplyAll on the leader). The
// commands are applied in order, but each is applied even if an earlier
// one failed, so only idempotent commands whose failure makes the later
// ones fail harmlessly go through it: AddFiles batches of one deploy,
// MarkReady, Publish.
type pipelinedApplier interface {
	ApplyPipelined(ctx context.Context, cmds []raft.Command) error
}

// applyPipelined applies cmds in one replication round when Meta can, and
// one after the other otherwise. Every replication round costs fsyncs on a
// majority of the nodes: a redeploy of a 5,000-file site took four rounds
// (manifest, MarkReady, Publish) where two do.
func (a *API) applyPipelined(ctx context.Context, cmds []raft.Command) error {
	if p, ok := a.meta.(pipelinedApplier); ok {
		return p.ApplyPipelined(ctx, cmds)
	}
	for _, c := range cmds {
		if err := a.meta.Apply(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// markReadyAndPublish is the fast path of publishing an uploading deploy:
// the blobs are checked, then MarkReady and Publish are replicated in one
// round. It answers and returns true on success or on a definite refusal
// (missing blobs, 409); it returns false, having written nothing, when the
// pipelined apply failed, and the caller takes the one-command-at-a-time
// path, which sorts out races with a concurrent finalize or publish.
func (a *API) markReadyAndPublish(ctx context.Context, w http.ResponseWriter, r *http.Request, d atoll.Deploy) bool {
	if _, ok := a.meta.(pipelinedApplier); !ok {
		return false
	}
	ready, warnings, err := a.checkedReady(ctx, d)
	if err != nil {
		a.fail(w, r, err)
		return true
	}
	at := time.Now().UTC()
	if err := a.applyPipelined(ctx, []raft.Command{ready, raft.Publish{Deploy: d.ID, At: at}}); err != nil {
		return false
	}
	d.State, d.Bytes, d.PublishedAt, d.Rules = atoll.StatePublished, ready.Bytes, at, rulesHash(ready.Rules)
	a.log.Info("deploy published", "site", d.Site, "deploy", d.ID)
	resp := a.deployResponse(d)
	resp.Warnings = warnings
	WriteJSON(w, http.StatusOK, resp)
	return true
}
