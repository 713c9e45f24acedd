package repair

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/placement"
)

// Census (leader only) asks every owner what it really holds, has the
// owners that lack blobs pull them, and reports the counts (also kept as
// LastReport).
func (r *Repairer) Census(ctx context.Context) (atoll.RepairReport, error) {
	start := time.Now()
	ref, err := r.Referenced(ctx)
	if err != nil {
		return atoll.RepairReport{}, err
	}
	view := r.view()
	rep := atoll.RepairReport{At: start.UTC(), Referenced: len(ref)}
	held, err := r.gather(ctx, view, ref)
	if err != nil {
		return rep, err
	}
	plan := Decide(ref, view, held)
	rep.Missing = plan.Missing
	var onOwners map[string]int
	rep.Pulled, onOwners = r.pull(ctx, plan)
	rep.UnderReplicated = underReplicated(ref, view.Replicas(), onOwners, plan.NotUploaded)
	rep.Took = time.Since(start).Round(time.Millisecond).String()
	r.report.Store(&rep)
	r.log.Info("repair census", "referenced", rep.Referenced, "under_replicated", rep.UnderReplicated,
		"missing", rep.Missing, "pulled", rep.Pulled, "not_uploaded", len(plan.NotUploaded), "took", rep.Took)
	return rep, ctx.Err()
}

// gather asks every owner which of the referenced blobs it owns it holds,
// then every node of the cluster about the blobs on no owner.
func (r *Repairer) gather(ctx context.Context, view *placement.View, ref map[string]bool) (Holdings, error) {
	h := Holdings{Owners: r.askOwners(ctx, view, slices.Collect(maps.Keys(ref)))}
	for id, a := range h.Owners {
		if a.Err != nil {
			r.log.Warn("census: owner unreachable", "node", id, "err", a.Err)
		}
	}
	lost := orphans(ref, countOnOwners(ref, view, h.Owners))
	if len(lost) == 0 {
		return h, nil
	}
	alive := slices.DeleteFunc(slices.Clone(view.All()), func(nd atoll.Node) bool { return nd.State == atoll.NodeRemoved })
	var err error
	h.Elsewhere, err = r.holders(ctx, alive, lost)
	return h, err
}

// pull has each owner of plan.Pulls fetch what it lacks, then asks it
// again what it holds. It returns how many copies arrived and the owners
// holding each blob afterwards.
func (r *Repairer) pull(ctx context.Context, plan Plan) (int, map[string]int) {
	pulled, onOwners := 0, maps.Clone(plan.OnOwners)
	for _, p := range plan.Pulls {
		for chunk := range slices.Chunk(p.Hashes, r.cfg.PullBatch) {
			got, err := r.peers.Pull(ctx, p.Node, chunk)
			if err != nil {
				r.log.Warn("census: owner could not pull", "node", p.Node.ID, "err", err)
				continue
			}
			pulled += got
		}
		if present, err := r.peers.Has(ctx, p.Node, p.Hashes); err == nil {
			for h := range present {
				onOwners[h]++
			}
		}
	}
	return pulled, onOwners
}

// askOwners asks the owners of hashes, in parallel, which of the blobs
// they own they hold.
func (r *Repairer) askOwners(ctx context.Context, view *placement.View, hashes []string) map[string]Answer {
	owners := map[string]atoll.Node{}
	lists := map[string][]string{}
	for _, h := range hashes {
		for _, o := range view.Owners(h) {
			owners[o.ID] = o
			lists[o.ID] = append(lists[o.ID], h)
		}
	}
	return r.ask(ctx, slices.Collect(maps.Values(owners)), func(nd atoll.Node) []string { return lists[nd.ID] })
}

// holders asks each of nodes which of hashes it holds and returns, per
// hash, how many of them do. Unreachable nodes count as holding nothing.
func (r *Repairer) holders(ctx context.Context, nodes []atoll.Node, hashes []string) (map[string]int, error) {
	held := make(map[string]int, len(hashes))
	for id, a := range r.ask(ctx, nodes, func(atoll.Node) []string { return hashes }) {
		if a.Err != nil {
			r.log.Warn("ask node for blobs", "node", id, "err", a.Err)
		}
		for h := range a.Held {
			held[h]++
		}
	}
	return held, ctx.Err()
}

// ask asks each of nodes, in parallel, which of the blobs listFor gives
// for it it holds, and returns the answers by node id.
func (r *Repairer) ask(ctx context.Context, nodes []atoll.Node, listFor func(atoll.Node) []string) map[string]Answer {
	var mu sync.Mutex
	out := make(map[string]Answer, len(nodes))
	var wg sync.WaitGroup
	for _, nd := range nodes {
		wg.Go(func() {
			present, err := r.peers.Has(ctx, nd, listFor(nd))
			a := Answer{Err: err, Held: make(map[string]bool, len(present))}
			if err == nil {
				for h := range present {
					a.Held[h] = true
				}
			}
			mu.Lock()
			out[nd.ID] = a
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// LastCopies counts blobs of complete deploys that no core node other than
// id holds. Blobs named only by uploads still in progress do not count: a
// deploy that never finished uploading holds nothing anyone can lose (its
// publish would ask for the blob again), and an upload abandoned halfway
// must not block a removal forever.
func (r *Repairer) LastCopies(ctx context.Context, id string) (int, error) {
	ref, err := r.Referenced(ctx)
	if err != nil {
		return 0, err
	}
	hashes := make([]string, 0, len(ref))
	for h, pendingOnly := range ref {
		if !pendingOnly {
			hashes = append(hashes, h)
		}
	}
	if len(hashes) == 0 {
		return 0, nil
	}
	var others []atoll.Node
	for _, nd := range r.view().All() {
		if nd.ID != id && nd.Role == atoll.RoleCore && nd.State != atoll.NodeRemoved {
			others = append(others, nd)
		}
	}
	held, err := r.holders(ctx, others, hashes)
	if err != nil {
		return 0, err
	}
	only := 0
	for _, h := range hashes {
		if held[h] == 0 {
			only++
		}
	}
	return only, nil
}
