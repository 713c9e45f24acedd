package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"

	"golang.org/x/sync/errgroup"

	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/placement"
)

// Repair (anti-entropy) keeps every referenced blob at R copies on its
// current owners. It runs on every membership change and every
// RepairInterval, in two halves:
//
//   - every node checks the blobs it holds but does not own: it pushes each
//     to the owners that lack it, and once all owners hold it, marks its own
//     copy evictable (a cache copy, dropped when space is needed); blobs no
//     retained deploy references are deleted after GCGrace;
//   - the leader takes a census: it asks every owner which of the blobs it
//     owns it really holds (not what it should hold), and tells each owner
//     that lacks some to pull them from the other holders. The census is
//     what `atoll status` reports as under-replicated and missing counts.

// repairLoop runs the repair pass periodically and when woken.
func (n *Node) repairLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(n.cfg.RepairInterval)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		case <-n.repairWake:
		}
		if n.store.LeaderID() == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, 30*time.Minute)
		if err := n.localPass(ctx); err != nil && n.ctx.Err() == nil {
			n.log.Warn("repair: local pass", "err", err)
		}
		if n.store.IsLeader() {
			if _, err := n.census(ctx); err != nil && n.ctx.Err() == nil {
				n.log.Warn("repair: census", "err", err)
			}
		}
		cancel()
	}
}

// repairSoon wakes the repair loop.
func (n *Node) repairSoon() {
	select {
	case n.repairWake <- struct{}{}:
	default:
	}
}

// membershipChanged runs when the set of owners may have changed.
func (n *Node) membershipChanged() {
	n.forgetConfirmations()
	n.drainLeft.Store(-1)
	n.repairSoon()
}

// referenced returns the distinct blobs of every retained deploy that has
// not failed. A blob maps to true when only uploads in progress (deploys
// still uploading) name it: the client may not have sent it yet, or may
// have given up (an abandoned upload stays uploading until someone fails
// it), so its absence from every node is no loss.
func (n *Node) referenced(ctx context.Context) (map[string]bool, error) {
	ref := make(map[string]bool)
	sites, err := n.store.Sites()
	if err != nil {
		return nil, err
	}
	for _, s := range sites {
		deploys, err := n.store.Deploys(s.Name)
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
			err := n.store.Files(d.ID, func(f atoll.File) error {
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

// localPass makes sure the owners hold every referenced blob this node
// holds without owning, and collects garbage.
func (n *Node) localPass(ctx context.Context) error {
	ref, err := n.referenced(ctx)
	if err != nil {
		return err
	}
	p := n.placement()
	var notOwned []string
	now := time.Now()
	err = n.blobs.Walk(ctx, func(h string) error {
		if _, ok := ref[h]; !ok {
			n.collectGarbage(h, now)
			return nil
		}
		n.unrefMu.Lock()
		delete(n.unrefSince, h)
		n.unrefMu.Unlock()
		if !p.Owns(n.cfg.ID, h) {
			notOwned = append(notOwned, h)
		}
		return nil
	})
	if err != nil {
		return err
	}
	left := n.handToOwners(ctx, p, notOwned)
	n.drainLeft.Store(int64(left))
	n.evictSoon()
	return ctx.Err()
}

// collectGarbage deletes a blob no retained deploy references once it has
// been unreferenced for GCGrace (measured from when this node first saw
// it unreferenced, so a blob uploaded just before its manifest is safe).
func (n *Node) collectGarbage(h string, now time.Time) {
	n.unrefMu.Lock()
	since, seen := n.unrefSince[h]
	if !seen {
		n.unrefSince[h] = now
	}
	n.unrefMu.Unlock()
	if !seen || now.Sub(since) < n.cfg.GCGrace {
		return
	}
	if err := n.blobs.Delete(h); err != nil {
		n.log.Warn("gc: delete blob", "blob", h, "err", err)
		return
	}
	n.unrefMu.Lock()
	delete(n.unrefSince, h)
	n.unrefMu.Unlock()
	n.log.Debug("gc: deleted unreferenced blob", "blob", h)
}

// handToOwners pushes each blob to the owners lacking it and confirms the
// ones all owners hold. It returns how many are still not confirmed.
func (n *Node) handToOwners(ctx context.Context, p *placement.View, hashes []string) int {
	if len(hashes) == 0 {
		return 0
	}
	perOwner := map[string][]string{}
	for _, h := range hashes {
		for _, o := range p.Owners(h) {
			perOwner[o.ID] = append(perOwner[o.ID], h)
		}
	}
	lacking := make(map[string][]atoll.Node) // blob -> owners without it
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id, list := range perOwner {
		nd, _ := n.nodeByID(id)
		wg.Go(func() {
			present, err := n.has(ctx, nd, list)
			mu.Lock()
			defer mu.Unlock()
			for _, h := range list {
				if _, ok := present[h]; !ok || err != nil {
					lacking[h] = append(lacking[h], nd)
				}
			}
		})
	}
	wg.Wait()
	var g errgroup.Group
	g.SetLimit(8)
	var left int
	for _, h := range hashes {
		owners, ok := lacking[h]
		if !ok {
			n.confirm(h)
			continue
		}
		g.Go(func() error {
			for _, o := range owners {
				if err := n.peer.Push(ctx, n.blobs, n.peerURL(o.APIAddr), h); err != nil {
					n.log.Warn("repair: push blob to owner", "blob", h, "owner", o.ID, "err", err)
					mu.Lock()
					left++
					mu.Unlock()
					return nil
				}
			}
			n.confirm(h)
			return nil
		})
	}
	g.Wait()
	return left
}

// census (leader only) asks every owner what it really holds and has the
// owners that lack blobs pull them.
func (n *Node) census(ctx context.Context) (atoll.RepairReport, error) {
	start := time.Now()
	ref, err := n.referenced(ctx)
	if err != nil {
		return atoll.RepairReport{}, err
	}
	p := n.placement()
	rep := atoll.RepairReport{At: start.UTC(), Referenced: len(ref)}
	perOwner := map[string][]string{}
	for h := range ref {
		for _, o := range p.Owners(h) {
			perOwner[o.ID] = append(perOwner[o.ID], h)
		}
	}
	var mu sync.Mutex
	onOwners := make(map[string]int, len(ref))
	lacking := map[string][]string{} // owner id -> blobs it lacks
	var wg sync.WaitGroup
	for id, list := range perOwner {
		nd, _ := n.nodeByID(id)
		wg.Go(func() {
			present, err := n.has(ctx, nd, list)
			if err != nil {
				n.log.Warn("census: owner unreachable", "node", id, "err", err)
				return // neither counted as holding nor asked to pull
			}
			mu.Lock()
			defer mu.Unlock()
			for _, h := range list {
				if _, ok := present[h]; ok {
					onOwners[h]++
				} else {
					lacking[id] = append(lacking[id], h)
				}
			}
		})
	}
	wg.Wait()

	// Blobs on no owner: are they anywhere at all? One that is nowhere and
	// that only uploads in progress name was never uploaded (yet): there is
	// nothing to copy and nothing was lost, so it is neither missing nor
	// under-replicated, and no owner is asked to pull it.
	notUploaded := map[string]bool{}
	var orphans []string
	for h := range ref {
		if onOwners[h] == 0 {
			orphans = append(orphans, h)
		}
	}
	if len(orphans) > 0 {
		held, err := n.holders(ctx, slices.DeleteFunc(slices.Clone(p.All()), func(nd atoll.Node) bool { return nd.State == atoll.NodeRemoved }), orphans)
		if err != nil {
			return rep, err
		}
		for _, h := range orphans {
			switch {
			case held[h] > 0:
			case ref[h]:
				notUploaded[h] = true
			default:
				rep.Missing++
			}
		}
	}

	// Have each owner pull what it lacks, then ask it again what it holds.
	for id, list := range lacking {
		list = slices.DeleteFunc(list, func(h string) bool { return notUploaded[h] })
		if len(list) == 0 {
			continue
		}
		nd, _ := n.nodeByID(id)
		for chunk := range slices.Chunk(list, maxHasHashes) {
			got, err := n.pull(ctx, nd, chunk)
			if err != nil {
				n.log.Warn("census: owner could not pull", "node", id, "err", err)
				continue
			}
			rep.Pulled += got
		}
		if present, err := n.has(ctx, nd, list); err == nil {
			for h := range present {
				onOwners[h]++
			}
		}
	}
	for h := range ref {
		if onOwners[h] < p.Replicas() && !notUploaded[h] {
			rep.UnderReplicated++
		}
	}
	rep.Took = time.Since(start).Round(time.Millisecond).String()
	n.report.Store(&rep)
	n.log.Info("repair census", "referenced", rep.Referenced, "under_replicated", rep.UnderReplicated,
		"missing", rep.Missing, "pulled", rep.Pulled, "not_uploaded", len(notUploaded), "took", rep.Took)
	return rep, ctx.Err()
}

// pull has node nd fetch hashes from their holders; it returns how many
// arrived.
func (n *Node) pull(ctx context.Context, nd atoll.Node, hashes []string) (int, error) {
	if nd.ID == n.cfg.ID {
		got := 0
		for _, h := range hashes {
			if _, err := n.fetch(ctx, h); err == nil {
				got++
			}
		}
		return got, nil
	}
	var out fetchResponse
	err := n.peerJSON(ctx, http.MethodPost, nd.APIAddr, "/v1/peer/fetch", jsonBody(hashList{Hashes: hashes}), &out)
	return out.Fetched, err
}

func jsonBody(v any) io.Reader {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs are passed
	}
	return bytes.NewReader(b)
}

// handleRepair runs a census now and answers its report.
func (n *Node) handleRepair(w http.ResponseWriter, r *http.Request) {
	if err := n.localPass(r.Context()); err != nil {
		builder.WriteError(w, http.StatusInternalServerError, "repair: "+err.Error())
		return
	}
	rep, err := n.census(r.Context())
	if err != nil {
		builder.WriteError(w, http.StatusInternalServerError, "repair: "+err.Error())
		return
	}
	builder.WriteJSON(w, http.StatusOK, rep)
}
