package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/placement"
)

var _ builder.BatchBlobs = blobs{}

// pushEachWorkers bounds the blob-by-blob pushes to one peer that has no
// batch endpoint (an older node).
const pushEachWorkers = 8

// PutBatch stores a batch of blobs locally with one group commit
// (blobstore.Store.PutBatch: every blob verified, nothing stored if one
// fails), then pushes to each other owner the blobs it owns in one
// request (peer.PushBatch; blob by blob to a node without it), and returns
// once a majority of the owners of every blob hold it fsynced. The pushes
// still in flight finish in the background; repair covers any that fail.
// A node whose disk is below its reserve refuses the batch (507): the
// client sends it to the next node it knows.
func (b blobs) PutBatch(ctx context.Context, next blobstore.BatchNext) ([]blobstore.Info, error) {
	n := b.n
	infos, err := n.blobs.PutBatch(ctx, next)
	if err != nil {
		return nil, n.noSpaceHere(err)
	}
	if len(infos) == 0 {
		return infos, nil
	}
	p := n.placement()
	plan, err := planBatchPush(n.cfg.ID, p, infos)
	if err != nil {
		return nil, err
	}
	if err := n.replicateBatch(ctx, plan); err != nil {
		return nil, err
	}
	for _, info := range infos {
		if !p.Owns(n.cfg.ID, info.Hash) {
			n.confirm(info.Hash) // the owners have it: this copy is only a cache
			n.evictSoon()
		}
	}
	return infos, nil
}

// batchPush is the plan of a batch's replication: which blobs each other
// owner is sent, and how many owners must hold each before the answer.
type batchPush struct {
	need    int
	stored  map[string]int      // blob -> owners holding it already (this node)
	targets map[string][]string // owner id -> blobs to push to it, in batch order
	nodes   map[string]atoll.Node
}

// planBatchPush plans the replication of infos, stored on node self, by
// placement p. It fails when the cluster has no active core node.
func planBatchPush(self string, p *placement.View, infos []blobstore.Info) (batchPush, error) {
	plan := batchPush{need: p.Quorum(), stored: map[string]int{}, targets: map[string][]string{}, nodes: map[string]atoll.Node{}}
	for _, info := range infos {
		h := info.Hash
		if _, seen := plan.stored[h]; seen {
			continue
		}
		owners := p.Owners(h)
		if len(owners) == 0 {
			return batchPush{}, fmt.Errorf("%w: the cluster has no active core node", ErrUnderReplicated)
		}
		plan.stored[h] = 0
		for _, o := range owners {
			if o.ID == self {
				plan.stored[h]++
				continue
			}
			plan.targets[o.ID] = append(plan.targets[o.ID], h)
			plan.nodes[o.ID] = o
		}
	}
	return plan, nil
}

// batchResult is what one owner stored of the blobs pushed to it.
type batchResult struct {
	node   string
	stored []string
	err    error
}

// replicateBatch runs plan: one push per owner, concurrently, detached
// from ctx (bounded by the node's life and a timeout), and returns once
// every blob is held by plan.need owners, or with ErrUnderReplicated once
// the pushes that ended leave some blob short.
func (n *Node) replicateBatch(ctx context.Context, plan batchPush) error {
	short := 0
	for _, c := range plan.stored {
		if c < plan.need {
			short++
		}
	}
	results := make(chan batchResult, len(plan.targets))
	for id, hashes := range plan.targets {
		url := n.peerURL(plan.nodes[id].APIAddr)
		n.wg.Go(func() {
			pctx, cancel := context.WithTimeout(n.ctx, 2*time.Minute)
			defer cancel()
			stored, err := n.pushBatch(pctx, url, hashes)
			results <- batchResult{node: id, stored: stored, err: err}
		})
	}
	var errs []error
	for range plan.targets {
		if short == 0 {
			return nil
		}
		select {
		case r := <-results:
			if r.err != nil {
				errs = append(errs, fmt.Errorf("node %s: %w", r.node, r.err))
			}
			for _, h := range r.stored {
				plan.stored[h]++
				if plan.stored[h] == plan.need {
					short--
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if short == 0 {
		return nil
	}
	var first string
	for h, c := range plan.stored {
		if c < plan.need && (first == "" || h < first) {
			first = h
		}
	}
	return fmt.Errorf("%w: %d blobs of the batch are on fewer than %d owners, e.g. %s: %w", ErrUnderReplicated, short, plan.need, first, joinedErrors(errs))
}

// pushBatch pushes hashes to the peer at url in one batch, or blob by blob
// when the peer has no batch endpoint, and returns those it stored.
func (n *Node) pushBatch(ctx context.Context, url string, hashes []string) ([]string, error) {
	err := n.peer.PushBatch(ctx, n.blobs, url, hashes)
	if err == nil {
		return hashes, nil
	}
	if !errors.Is(err, peer.ErrNoBatch) {
		return nil, err
	}
	var (
		mu     sync.Mutex
		stored []string
		errs   []error
		wg     sync.WaitGroup
		sem    = make(chan struct{}, pushEachWorkers)
	)
	for _, h := range hashes {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := n.peer.Push(ctx, n.blobs, url, h)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			stored = append(stored, h)
		})
	}
	wg.Wait()
	slices.Sort(stored)
	return stored, errors.Join(errs...)
}
