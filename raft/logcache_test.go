package raft

import (
	"bytes"
	"fmt"
	"testing"

	hraft "github.com/hashicorp/raft"
)

// cachedBytes sums the data of the entries the cache holds, from its slots.
func (c *logCache) cachedBytes() (n, entries int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, l := range c.slots {
		if l != nil {
			n += logSize(l)
			entries++
		}
	}
	return n, entries
}

func entryData(i uint64, size int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, size)
	copy(b, fmt.Sprintf("entry %d", i))
	return b
}

// TestLogCacheBoundsBytes stores big entries (AddFiles batches of a huge
// manifest) and small ones through the cache: the cache never holds more
// than its byte budget, and every entry reads back whole, from the cache or
// from the store.
func TestLogCacheBoundsBytes(t *testing.T) {
	const budget = 1 << 20
	store := hraft.NewInmemStore()
	c := newLogCache(store, 64, budget)
	sizes := map[uint64]int{}
	next := uint64(1)
	write := func(n, size int, batch int) {
		var logs []*hraft.Log
		for range n {
			sizes[next] = size
			logs = append(logs, &hraft.Log{Index: next, Term: 1, Type: hraft.LogCommand, Data: entryData(next, size)})
			next++
			if len(logs) == batch {
				if err := c.StoreLogs(logs); err != nil {
					t.Fatal(err)
				}
				logs = nil
			}
		}
		if len(logs) > 0 {
			if err := c.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(40, 256<<10, 8) // 10 MiB of big entries
	if got, _ := c.cachedBytes(); got > budget {
		t.Errorf("after big entries the cache holds %d bytes, want at most %d", got, budget)
	}
	write(200, 100, 1) // small entries fill the slots by count
	if got, n := c.cachedBytes(); got > budget || n > 64 {
		t.Errorf("after small entries the cache holds %d bytes in %d entries, want at most %d bytes and 64 entries", got, n, budget)
	}
	write(3, 2<<20, 1) // one entry alone over the budget is still stored
	for i := uint64(1); i < next; i++ {
		var l hraft.Log
		if err := c.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if l.Index != i || !bytes.Equal(l.Data, entryData(i, sizes[i])) {
			t.Fatalf("GetLog(%d) = index %d, %d bytes; want entry %d of %d bytes", i, l.Index, len(l.Data), i, sizes[i])
		}
	}
}

// TestLogCacheAfterDeleteAndGap: entries deleted from the store are not
// served from the cache, and a write after a gap (a restored snapshot)
// starts the cached run again.
func TestLogCacheAfterDeleteAndGap(t *testing.T) {
	store := hraft.NewInmemStore()
	c := newLogCache(store, 8, 1<<20)
	for i := uint64(1); i <= 5; i++ {
		if err := c.StoreLog(&hraft.Log{Index: i, Term: 1, Data: entryData(i, 10)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.DeleteRange(4, 5); err != nil {
		t.Fatal(err)
	}
	var l hraft.Log
	if err := c.GetLog(5, &l); err != hraft.ErrLogNotFound {
		t.Errorf("GetLog(5) after DeleteRange = %v, want ErrLogNotFound", err)
	}
	// Raft writes a new term's entries at 4 and 5.
	for i := uint64(4); i <= 5; i++ {
		if err := c.StoreLog(&hraft.Log{Index: i, Term: 2, Data: entryData(i+100, 10)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.StoreLog(&hraft.Log{Index: 1000, Term: 3, Data: entryData(7, 10)}); err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{1, 4, 5, 1000} {
		var want hraft.Log
		if err := store.GetLog(i, &want); err != nil {
			t.Fatal(err)
		}
		if err := c.GetLog(i, &l); err != nil || l.Term != want.Term || !bytes.Equal(l.Data, want.Data) {
			t.Errorf("GetLog(%d) = term %d %q, %v; want term %d %q", i, l.Term, l.Data, err, want.Term, want.Data)
		}
	}
}
