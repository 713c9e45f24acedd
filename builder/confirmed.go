package builder

import (
	"slices"
	"sync"
	"time"
)

// The create step of a digest deploy asks the owners of every blob of the
// manifest whether they hold it (Blobs.StatMany); in a cluster that is one
// batched question per owner about thousands of hashes, 50-150 ms for a
// 5,000-file site. Publishing (or finalizing) the deploy moments later used
// to ask the very same question again. confirmations remembers, per deploy,
// what the create step found: the blobs it did not find (the ones the
// client then uploads), and the bytes of the files whose blobs it found.
// checkManifest then asks only about the former.
//
// An answer stands for confirmTTL and only under the membership it was
// given in (Blobs that implement membershipViewer: a node whose core nodes
// or replication factor changed has other owners for some blobs). Past
// that, on another node, after a restart, and for every rollback, the whole
// manifest is checked as before. Within the window a blob the create step
// saw on a majority of its owners counts as stored: once the manifest is
// recorded, garbage collection keeps every blob an uploading deploy names
// and a corrupt copy is replaced from the others. A copy lost inside the
// window (say, by a collection pass that read the deploy table before the
// manifest landed) goes unnoticed by the publish, as a loss right after
// the re-check always did; repair restores it from the remaining copies.
const (
	confirmTTL       = time.Minute
	maxConfirmations = 256
)

// membershipViewer is implemented by Blobs whose "stored" answer depends on
// which nodes own which blobs. Membership identifies that assignment: two
// equal strings mean the same owners for every blob.
type membershipViewer interface {
	Membership() string
}

// confirmation is what the create step of one deploy found.
type confirmation struct {
	at         time.Time
	membership string
	missing    []string // sorted: the blobs not stored at create time
	bytes      int64    // total size of the files whose blobs were stored
}

// confirmations is a small, bounded memory of recent create-time checks,
// keyed by deploy id. Safe for concurrent use.
type confirmations struct {
	mu   sync.Mutex
	now  func() time.Time
	byID map[string]confirmation
}

func newConfirmations() *confirmations {
	return &confirmations{now: time.Now, byID: map[string]confirmation{}}
}

// remember records the create-time check of deploy id.
func (c *confirmations) remember(id, membership string, missing []string, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.byID) >= maxConfirmations {
		var oldestID string
		var oldest time.Time
		for k, v := range c.byID {
			if now.Sub(v.at) >= confirmTTL {
				delete(c.byID, k)
			} else if oldestID == "" || v.at.Before(oldest) {
				oldestID, oldest = k, v.at
			}
		}
		if len(c.byID) >= maxConfirmations {
			delete(c.byID, oldestID)
		}
	}
	c.byID[id] = confirmation{at: now, membership: membership, missing: slices.Clone(missing), bytes: bytes}
}

// lookup returns deploy id's create-time check if it still stands under
// membership.
func (c *confirmations) lookup(id, membership string) (confirmation, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	got, ok := c.byID[id]
	if !ok {
		return confirmation{}, false
	}
	if c.now().Sub(got.at) >= confirmTTL || got.membership != membership {
		delete(c.byID, id)
		return confirmation{}, false
	}
	return got, true
}

// membership returns the Blobs' current membership, "" when it has none.
func (a *API) membership() string {
	if v, ok := a.blobs.(membershipViewer); ok {
		return v.Membership()
	}
	return ""
}
