package repair

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/atoll-hosting/atoll/placement"
)

// pushWorkers bounds the blobs the local pass hands over at once.
const pushWorkers = 8

// LocalPass makes sure the owners hold every referenced blob this node
// holds without owning, records how many are not confirmed yet
// (DrainLeft), and collects garbage.
func (r *Repairer) LocalPass(ctx context.Context) error {
	ref, err := r.Referenced(ctx)
	if err != nil {
		return err
	}
	view := r.view()
	var notOwned []string
	now := time.Now()
	err = r.local.Walk(ctx, func(h string) error {
		if _, ok := ref[h]; !ok {
			r.collectGarbage(h, now)
			return nil
		}
		r.unrefMu.Lock()
		delete(r.unrefSince, h)
		r.unrefMu.Unlock()
		if !view.Owns(r.cfg.Self, h) {
			notOwned = append(notOwned, h)
		}
		return nil
	})
	if err != nil {
		return err
	}
	left := r.handToOwners(ctx, view, notOwned)
	r.drainLeft.Store(int64(left))
	r.cache.EvictSoon()
	return ctx.Err()
}

// collectGarbage deletes a blob no retained deploy references once it has
// been unreferenced for GCGrace (measured from when this node first saw
// it unreferenced, so a blob uploaded just before its manifest is safe).
func (r *Repairer) collectGarbage(h string, now time.Time) {
	r.unrefMu.Lock()
	since, seen := r.unrefSince[h]
	if !seen {
		r.unrefSince[h] = now
	}
	r.unrefMu.Unlock()
	if !seen || now.Sub(since) < r.cfg.GCGrace {
		return
	}
	if err := r.local.Delete(h); err != nil {
		r.log.Warn("gc: delete blob", "blob", h, "err", err)
		return
	}
	r.unrefMu.Lock()
	delete(r.unrefSince, h)
	r.unrefMu.Unlock()
	r.log.Debug("gc: deleted unreferenced blob", "blob", h)
}

// handToOwners pushes each of hashes to the owners lacking it and confirms
// the ones all owners hold. It returns how many are still not confirmed.
func (r *Repairer) handToOwners(ctx context.Context, view *placement.View, hashes []string) int {
	if len(hashes) == 0 {
		return 0
	}
	confirmed, pushes := handOff(hashes, view, r.askOwners(ctx, view, hashes))
	for _, h := range confirmed {
		r.cache.Confirm(h)
	}
	var mu sync.Mutex
	var left int
	var g errgroup.Group
	g.SetLimit(pushWorkers)
	for _, p := range pushes {
		g.Go(func() error {
			for _, o := range p.To {
				if err := r.peers.Push(ctx, o, p.Hash); err != nil {
					r.log.Warn("repair: push blob to owner", "blob", p.Hash, "owner", o.ID, "err", err)
					mu.Lock()
					left++
					mu.Unlock()
					return nil
				}
			}
			r.cache.Confirm(p.Hash)
			return nil
		})
	}
	g.Wait()
	return left
}
