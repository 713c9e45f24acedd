package raft

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/atoll-hosting/atoll"
)

// stateCounts is what the FSM keeps in memory of its own state so that the
// reads a node makes on a timer or per API call do not walk every site or
// deploy: the site count, deploys by state, and the deploys the leader's
// expiry loop looks at (still uploading, or failed with a manifest that
// still holds entries). It is computed once, with one walk, when the FSM
// opens and when it restores a snapshot (so a data dir or snapshot written
// by an earlier binary needs nothing new), and kept in step by the
// applier: each write of a site or deploy record registers its change with
// the write transaction's OnCommit, so the counts move exactly when the
// state does, and not at all for a batch that rolls back. Nothing of it is
// stored: no format changes.
type stateCounts struct {
	mu      sync.Mutex
	sites   int
	deploys map[atoll.DeployState]int
	watched map[string]atoll.Deploy // by id: see expiryWatched
}

// expiryWatched reports whether the expiry loop (node/expire.go) needs d:
// still uploading (it may expire), or failed with entries left in its
// manifest (failed before atoll.LevelFeatureLevels: emptied by the leader).
func expiryWatched(d atoll.Deploy) bool {
	return d.State == atoll.StateUploading || (d.State == atoll.StateFailed && d.Received > 0)
}

// countState walks a whole state once: what OpenFSM and Restore call.
func countState(tx *bolt.Tx) (*stateCounts, error) {
	c := &stateCounts{deploys: map[atoll.DeployState]int{}, watched: map[string]atoll.Deploy{}}
	if b := tx.Bucket(bucketSites); b != nil {
		c.sites = b.Stats().KeyN
	}
	b := tx.Bucket(bucketDeploys)
	if b == nil {
		return c, nil
	}
	err := b.ForEach(func(k, v []byte) error {
		d, err := decodeCounted(k, v)
		if err != nil {
			return err
		}
		c.add(d, 1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// countedDeploy is the part of a deploy record the counts read: the state
// alone for most, the whole deploy for those expiryWatched keeps.
type countedDeploy struct {
	State    atoll.DeployState `json:"state"`
	Received int               `json:"received"`
}

// decodeCounted decodes the deploy record v (key k) as far as the counts
// need it.
func decodeCounted(k, v []byte) (atoll.Deploy, error) {
	var cd countedDeploy
	if err := json.Unmarshal(v, &cd); err != nil {
		return atoll.Deploy{}, fmt.Errorf("decode deploy %q: %w", k, err)
	}
	d := atoll.Deploy{ID: string(k), State: cd.State, Received: cd.Received}
	if expiryWatched(d) {
		var rec deployRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return atoll.Deploy{}, fmt.Errorf("decode deploy %q: %w", k, err)
		}
		d = rec.Deploy
	}
	return d, nil
}

// add counts deploy d (sign 1) or stops counting it (sign -1).
func (c *stateCounts) add(d atoll.Deploy, sign int) {
	c.deploys[d.State] += sign
	if c.deploys[d.State] == 0 {
		delete(c.deploys, d.State)
	}
	if sign > 0 && expiryWatched(d) {
		c.watched[d.ID] = d
	} else if sign < 0 {
		delete(c.watched, d.ID)
	}
}

// countPut registers, with the transaction, the change that writing v under
// key in bucket makes to the counts. It reads the old record, so it is
// called before the write.
func (a *applier) countPut(bucket []byte, key string, v any) error {
	if a.counts == nil {
		return nil
	}
	switch string(bucket) {
	case string(bucketSites):
		if a.bucket(bucketSites).Get([]byte(key)) == nil {
			a.onCommit(func(c *stateCounts) { c.sites++ })
		}
	case string(bucketDeploys):
		old, had, err := a.countedOld(key)
		if err != nil {
			return err
		}
		var d atoll.Deploy
		switch rec := v.(type) {
		case deployRecord:
			d = rec.Deploy
		case *deployRecord:
			d = rec.Deploy
		default:
			return fmt.Errorf("count deploy %q: unexpected record %T", key, v)
		}
		a.onCommit(func(c *stateCounts) {
			if had {
				c.add(old, -1)
			}
			c.add(d, 1)
		})
	}
	return nil
}

// countDelete registers the change deleting key from bucket makes to the
// counts; called before the delete.
func (a *applier) countDelete(bucket []byte, key string) error {
	if a.counts == nil {
		return nil
	}
	switch string(bucket) {
	case string(bucketSites):
		if a.bucket(bucketSites).Get([]byte(key)) != nil {
			a.onCommit(func(c *stateCounts) { c.sites-- })
		}
	case string(bucketDeploys):
		old, had, err := a.countedOld(key)
		if err != nil || !had {
			return err
		}
		a.onCommit(func(c *stateCounts) { c.add(old, -1) })
	}
	return nil
}

// countedOld reads the deploy record under id, as the counts know it.
func (a *applier) countedOld(id string) (atoll.Deploy, bool, error) {
	v := a.bucket(bucketDeploys).Get([]byte(id))
	if v == nil {
		return atoll.Deploy{}, false, nil
	}
	d, err := decodeCounted([]byte(id), v)
	return d, err == nil, err
}

// onCommit runs fn on the counts, under their lock, once the batch's
// transaction commits.
func (a *applier) onCommit(fn func(*stateCounts)) {
	c := a.counts
	a.tx.OnCommit(func() {
		c.mu.Lock()
		fn(c)
		c.mu.Unlock()
	})
}

// setCounts installs counts computed by countState.
func (f *FSM) setCounts(c *stateCounts) {
	f.counts.mu.Lock()
	f.counts.sites, f.counts.deploys, f.counts.watched = c.sites, c.deploys, c.watched
	f.counts.mu.Unlock()
}

// SiteCount returns how many sites the state holds, without reading them.
func (f *FSM) SiteCount() int {
	f.counts.mu.Lock()
	defer f.counts.mu.Unlock()
	return f.counts.sites
}

// DeployCounts returns how many retained deploys are in each state, from
// the counts kept in memory (no read of the state). The error is always
// nil; it stays for callers written against a walk.
func (f *FSM) DeployCounts() (map[atoll.DeployState]int, error) {
	f.counts.mu.Lock()
	defer f.counts.mu.Unlock()
	return maps.Clone(f.counts.deploys), nil
}

// ExpiryCandidates returns the deploys the leader's expiry loop looks at,
// ordered by id: those still uploading and the failed ones whose manifest
// still holds entries (Received > 0). It reads no site: a cluster of
// 100,000 sites with a handful of uploads costs a handful.
func (f *FSM) ExpiryCandidates() []atoll.Deploy {
	f.counts.mu.Lock()
	out := slices.Collect(maps.Values(f.counts.watched))
	f.counts.mu.Unlock()
	slices.SortFunc(out, func(a, b atoll.Deploy) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// RestoredAt returns the applied index of the last snapshot this FSM
// restored since it opened; 0 if none. While AppliedIndex still equals it,
// hashicorp/raft may not yet have installed the snapshot's configuration:
// it restores the FSM first, then sets its configuration (InstallSnapshot),
// so Servers can still answer the configuration from before the snapshot.
// The first entry applied after the restore comes after both.
func (f *FSM) RestoredAt() uint64 { return f.restored.Load() }
