package raft

import (
	"fmt"
	"sync"

	hraft "github.com/hashicorp/raft"
)

// Log cache bounds: the most recent entries are kept in memory (the leader
// reads them back to replicate to followers), at most logCacheEntries of
// them and at most logCacheBytes of command data.
const (
	logCacheEntries = 512
	logCacheBytes   = 16 << 20
)

// logCache is hashicorp/raft's LogCache with a byte budget as well as a
// count. hraft.LogCache keeps the last N entries whatever their size: after
// a million-entry manifest (AddFiles entries of up to MaxBatchBytes) its 512
// slots pinned 100 MiB of encoded commands in the heap until 512 newer
// entries displaced them. Here the oldest entries are dropped as soon as the
// cached data exceeds logCacheBytes; a dropped entry is read from the store,
// as any entry older than the cache is.
//
// The cache holds a contiguous run of indexes [first, last]: a write that
// does not follow last (after a snapshot restore, or raft overwriting a
// conflicting suffix) starts the run again.
type logCache struct {
	store    hraft.LogStore
	maxBytes int

	mu    sync.RWMutex
	slots []*hraft.Log // by index modulo len(slots); nil or stale outside [first, last]
	first uint64       // lowest cached index; first > last when empty
	last  uint64
	bytes int // len(Data) + len(Extensions) of the cached entries
}

var (
	_ hraft.LogStore          = (*logCache)(nil)
	_ hraft.MonotonicLogStore = (*logCache)(nil)
)

func newLogCache(store hraft.LogStore, entries, maxBytes int) *logCache {
	return &logCache{store: store, maxBytes: maxBytes, slots: make([]*hraft.Log, entries), first: 1}
}

func logSize(l *hraft.Log) int { return len(l.Data) + len(l.Extensions) }

// IsMonotonic passes on the store's answer, as hraft.LogCache does.
func (c *logCache) IsMonotonic() bool {
	m, ok := c.store.(hraft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func (c *logCache) GetLog(index uint64, l *hraft.Log) error {
	c.mu.RLock()
	var cached *hraft.Log
	if index >= c.first && index <= c.last {
		cached = c.slots[index%uint64(len(c.slots))]
	}
	c.mu.RUnlock()
	if cached != nil && cached.Index == index {
		*l = *cached
		return nil
	}
	return c.store.GetLog(index, l)
}

func (c *logCache) StoreLog(l *hraft.Log) error { return c.StoreLogs([]*hraft.Log{l}) }

func (c *logCache) StoreLogs(logs []*hraft.Log) error {
	if err := c.store.StoreLogs(logs); err != nil {
		return fmt.Errorf("store raft log entries: %w", err) // wrapped: a full disk stays recognizable (ENOSPC)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		if l.Index == 0 {
			continue // raft never writes index 0; not cached
		}
		if c.first > c.last || l.Index != c.last+1 {
			c.reset(l.Index)
		}
		n := uint64(len(c.slots))
		if c.last-c.first+1 == n { // full: the new entry takes the oldest's slot
			c.dropOldest()
		}
		c.slots[l.Index%n] = l
		c.last = l.Index
		c.bytes += logSize(l)
		for c.bytes > c.maxBytes && c.first < c.last {
			c.dropOldest()
		}
	}
	return nil
}

// reset empties the cache; the next entry stored is index.
func (c *logCache) reset(index uint64) {
	clear(c.slots)
	c.first, c.last, c.bytes = index, index-1, 0
}

func (c *logCache) dropOldest() {
	i := c.first % uint64(len(c.slots))
	if l := c.slots[i]; l != nil {
		c.bytes -= logSize(l)
	}
	c.slots[i] = nil
	c.first++
}

func (c *logCache) FirstIndex() (uint64, error) { return c.store.FirstIndex() }

func (c *logCache) LastIndex() (uint64, error) { return c.store.LastIndex() }

func (c *logCache) DeleteRange(min, max uint64) error {
	c.mu.Lock()
	c.reset(1)
	c.mu.Unlock()
	return c.store.DeleteRange(min, max)
}
