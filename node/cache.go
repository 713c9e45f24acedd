package node

import (
	"context"
	"time"
)

// The blobs a node holds without owning them (read-through copies on an
// edge or a core node, copies left behind by a membership change) form its
// cache, bounded by Config.CacheSize; the least recently served go first.
// A copy is evictable only once this node has seen its owners hold it
// ("confirmed"): that way a membership change never drops the last copy of
// a blob before its new owners pulled it.

// confirm records that the owners of hash hold it.
func (n *Node) confirm(hash string) {
	n.confirmedMu.Lock()
	n.confirmed[hash] = struct{}{}
	n.confirmedMu.Unlock()
}

// forgetConfirmations drops every confirmation; ownership changed, so the
// next repair pass confirms again against the new owners.
func (n *Node) forgetConfirmations() {
	n.confirmedMu.Lock()
	clear(n.confirmed)
	n.confirmedMu.Unlock()
}

// evictable reports whether this node may delete its copy of hash.
func (n *Node) evictable(hash string) bool {
	if n.placement().Owns(n.cfg.ID, hash) {
		return false
	}
	n.confirmedMu.Lock()
	_, ok := n.confirmed[hash]
	n.confirmedMu.Unlock()
	return ok
}

// evictSoon asks the eviction loop to bring the cache under its size.
func (n *Node) evictSoon() {
	select {
	case n.evictWake <- struct{}{}:
	default:
	}
}

// evictLoop evicts least recently served copies while the cache is over
// Config.CacheSize.
func (n *Node) evictLoop() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.evictWake:
		}
		ctx, cancel := context.WithTimeout(n.ctx, time.Minute)
		count, freed, err := n.blobs.EvictLRU(ctx, n.cfg.CacheSize, n.evictable)
		cancel()
		if err != nil && n.ctx.Err() == nil {
			n.log.Warn("evict cached blobs", "err", err)
		}
		n.metrics.evicted.Add(float64(count))
		n.metrics.evictedBytes.Add(float64(freed))
		if count > 0 {
			n.log.Debug("evicted cached blobs", "blobs", count, "bytes", freed)
		}
	}
}
