package blobstore

import "sync"

// defaultCacheEntries bounds the Stat cache. An entry is roughly 250 bytes
// (the 64-byte key, the Info and up to three variants), so the cache stays
// under ~10 MiB however many blobs the store holds.
const defaultCacheEntries = 1 << 15

// infoCache remembers the Info of recently seen blobs so that Stat, which
// serve calls for every request, usually costs a map lookup under a read
// lock instead of four stat system calls.
//
// Choices:
//   - Only blobs that exist are cached. A miss is not remembered, so a blob
//     becomes visible the moment its Put completes.
//   - Eviction is random (Go's map iteration order) when the cache is full:
//     hits never write, so they share a read lock, and a wrong eviction only
//     costs four stat calls.
//   - A stored blob never changes: its variants are renamed into place before
//     its identity file, and a Put of an existing blob changes nothing. So the
//     only invalidation is Delete, which removes the entry after removing
//     the identity file and bumps a generation counter; Stat inserts what it
//     read from disk only if no Delete ran meanwhile, so a Stat racing with a
//     Delete cannot put the deleted blob back in the cache.
//   - Files removed behind the store's back (by hand) can leave stale
//     entries; Open then fails with ErrNotFound and drops the entry.
type infoCache struct {
	mu  sync.RWMutex
	max int
	gen uint64
	m   map[string]Info
}

func newInfoCache(max int) infoCache {
	return infoCache{max: max, m: make(map[string]Info)}
}

// get returns a copy of the cached Info of hash.
func (c *infoCache) get(hash string) (Info, bool) {
	c.mu.RLock()
	info, ok := c.m[hash]
	c.mu.RUnlock()
	if !ok {
		return Info{}, false
	}
	return cloneInfo(info), true
}

// generation returns the counter to pass to addIfGeneration.
func (c *infoCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// add caches info. Callers must hold the hash's write lock (Put does).
func (c *infoCache) add(info Info) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.insertLocked(info)
}

// addIfGeneration caches info, read from disk after generation() returned
// gen, unless a Delete ran since.
func (c *infoCache) addIfGeneration(info Info, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	c.insertLocked(info)
}

func (c *infoCache) insertLocked(info Info) {
	if c.max <= 0 {
		return
	}
	if _, ok := c.m[info.Hash]; !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[info.Hash] = cloneInfo(info)
}

// remove forgets hash and invalidates reads that started before.
func (c *infoCache) remove(hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, hash)
	c.gen++
}
