package blobstore

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// waitAccounting waits for the startup scan of a store's accounting.
func waitAccounting(t *testing.T, s *Store) {
	t.Helper()
	if err := s.acct.waitLoaded(t.Context()); err != nil {
		t.Fatalf("wait for the accounting scan: %v", err)
	}
}

// useFakeClock makes every access of s one tick later than the previous
// one, so that recency never depends on the clock's resolution.
func useFakeClock(t *testing.T, s *Store) {
	t.Helper()
	waitAccounting(t, s)
	var ticks atomic.Int64
	s.acct.clock = func() int64 { return ticks.Add(1) }
}

// open opens and closes a blob: an access.
func open(t *testing.T, s *Store, hash, encoding string) {
	t.Helper()
	f, _, err := s.Open(hash, encoding)
	if err != nil {
		t.Fatalf("Open(%s, %q): %v", hash[:8], encoding, err)
	}
	f.Close()
}

func TestEvictLRU(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t)
	useFakeClock(t, s)
	// Blobs under minCompressSize get no variant: each takes 200 bytes.
	names := []string{"a", "b", "c", "d", "e"}
	hashes := map[string]string{}
	byHash := map[string]string{}
	for i, n := range names {
		info := put(t, s, randomBlob(200, uint64(100+i)))
		hashes[n], byHash[info.Hash] = info.Hash, n
	}
	open(t, s, hashes["c"], "")
	open(t, s, hashes["a"], "")
	// Least recently used first: b, d, e, c, a. d is pinned.
	var asked atomic.Int64
	evictable := func(h string) bool {
		asked.Add(1)
		return byHash[h] != "d"
	}
	present := func() []string {
		var got []string
		for _, n := range names {
			if s.Has(hashes[n]) {
				got = append(got, n)
			}
		}
		return got
	}

	steps := []struct {
		name        string
		budget      int64
		wantEvicted int
		wantPresent []string
	}{
		{name: "under budget", budget: 1000, wantPresent: []string{"a", "b", "c", "d", "e"}},
		{name: "evictable blobs fit, pinned one not counted", budget: 800, wantPresent: []string{"a", "b", "c", "d", "e"}},
		{name: "two oldest evictable go", budget: 500, wantEvicted: 2, wantPresent: []string{"a", "c", "d"}},
		{name: "everything evictable goes", budget: 0, wantEvicted: 2, wantPresent: []string{"d"}},
		{name: "pinned blob stays", budget: -1, wantPresent: []string{"d"}},
	}
	for _, st := range steps {
		evicted, freed, err := s.EvictLRU(t.Context(), st.budget, evictable)
		if err != nil {
			t.Fatalf("%s: EvictLRU: %v", st.name, err)
		}
		if evicted != st.wantEvicted || freed != int64(200*st.wantEvicted) {
			t.Errorf("%s: EvictLRU = %d blobs, %d bytes; want %d, %d", st.name, evicted, freed, st.wantEvicted, 200*st.wantEvicted)
		}
		if got := present(); !slices.Equal(got, st.wantPresent) {
			t.Errorf("%s: blobs left = %v, want %v", st.name, got, st.wantPresent)
		}
		if blobs, size := s.Usage(); blobs != len(st.wantPresent) || size != int64(200*len(st.wantPresent)) {
			t.Errorf("%s: Usage = %d blobs, %d bytes; want %d, %d", st.name, blobs, size, len(st.wantPresent), 200*len(st.wantPresent))
		}
		if st.name == "under budget" && asked.Load() != 0 {
			t.Errorf("%s: evictable called %d times, want none", st.name, asked.Load())
		}
	}
}

// An access after EvictLRU chose its victims keeps the blob; so does a Put
// or Import that finds it stored.
func TestEvictLRUKeepsBlobsAccessedMeanwhile(t *testing.T) {
	t.Parallel()
	for _, access := range []string{"Open", "Put", "Import"} {
		t.Run(access, func(t *testing.T) {
			t.Parallel()
			s, _ := newTestStore(t)
			useFakeClock(t, s)
			content := randomBlob(200, 1)
			info := put(t, s, content)
			snap := s.acct.snapshot()
			if len(snap) != 1 {
				t.Fatalf("snapshot has %d entries, want 1", len(snap))
			}
			switch access {
			case "Open":
				open(t, s, info.Hash, "")
			case "Put":
				put(t, s, content)
			case "Import":
				if _, err := s.Import(t.Context(), info.Hash, wantHeader(info), bytes.NewReader(content)); err != nil {
					t.Fatal(err)
				}
			}
			got, err := s.evictIfIdle(snap[0])
			if err != nil {
				t.Fatal(err)
			}
			if got != evictAccessed || !s.Has(info.Hash) {
				t.Errorf("evictIfIdle after %s = %v, blob present %v; want it kept", access, got, s.Has(info.Hash))
			}
		})
	}
}

func TestEvictLRUStopsWithContext(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t)
	info := put(t, s, randomBlob(200, 1))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err := s.EvictLRU(ctx, 0, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("EvictLRU with a cancelled context: err = %v, want context.Canceled", err)
	}
	if !s.Has(info.Hash) {
		t.Errorf("EvictLRU with a cancelled context deleted a blob")
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	s, dir := newTestStore(t)
	waitAccounting(t, s)
	check := func(step string, wantBlobs int, wantBytes int64) {
		t.Helper()
		if blobs, size := s.Usage(); blobs != wantBlobs || size != wantBytes {
			t.Errorf("%s: Usage = %d blobs, %d bytes; want %d, %d", step, blobs, size, wantBlobs, wantBytes)
		}
		if got := bytesUnder(t, dir); got != wantBytes {
			t.Errorf("%s: files on disk hold %d bytes, Usage should say so, want %d", step, got, wantBytes)
		}
	}
	check("empty", 0, 0)

	text := put(t, s, textBlob(8<<10, 31))
	if len(text.Variants) != 3 {
		t.Fatalf("text blob has variants %v, want 3", encodingsOf(text))
	}
	check("after Put of text", 1, diskBytes(text))
	put(t, s, textBlob(8<<10, 31))
	check("after a second Put of it", 1, diskBytes(text))

	imported := importHandmade(t, s, textBlob(4<<10, 32), "zstd", "gzip")
	check("after Import", 2, diskBytes(text)+diskBytes(imported))

	if err := s.Delete(text.Hash); err != nil {
		t.Fatal(err)
	}
	check("after Delete", 1, diskBytes(imported))
	if err := s.Delete(text.Hash); err != nil {
		t.Fatal(err)
	}
	check("after a second Delete", 1, diskBytes(imported))

	// A new process counts what is on disk.
	put(t, s, randomBlob(100, 33))
	_, want := s.Usage()
	reopened := openTestStore(t, dir)
	waitAccounting(t, reopened)
	if blobs, size := reopened.Usage(); blobs != 2 || size != want {
		t.Errorf("after reopening: Usage = %d blobs, %d bytes; want 2, %d", blobs, size, want)
	}
}

// bytesUnder adds up the sizes of the blob files (not temp files) in a
// store folder.
func bytesUnder(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	for _, f := range filesUnder(t, dir) {
		if filepath.Dir(f) == TempFolder {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// The startup scan never brings back a blob deleted after it looked at it,
// and never counts a blob twice.
func TestAccountingScanRaces(t *testing.T) {
	t.Parallel()
	a := newAccounting()
	h1, h2, h3 := hashOf([]byte("1")), hashOf([]byte("2")), hashOf([]byte("3"))
	// The scan has stat-ed all three; meanwhile h1 is deleted, h2 put
	// again (published: counted), h3 untouched.
	a.removed(h1)
	a.added(Info{Hash: h2, Size: 20})
	for _, h := range []string{h1, h2, h3} {
		k := accKey(h)
		a.addScanned(a.shard(k), []scanned{{key: k, size: 10}})
	}
	a.finishLoading()
	if blobs, size := a.blobs.Load(), a.bytes.Load(); blobs != 2 || size != 30 {
		t.Errorf("after the scan: %d blobs, %d bytes; want 2 (h2, h3), 30", blobs, size)
	}
	if a.entry(accKey(h1)) != nil {
		t.Errorf("the scan brought back a deleted blob")
	}
	// Tombstones are for the scan only.
	a.removed(h3)
	for i := range a.shards {
		if a.shards[i].deleted != nil {
			t.Fatalf("shard %d keeps tombstones after the scan", i)
		}
	}
}

// Usage stays exact under concurrent Put, Import, Open, Delete and
// EvictLRU.
func TestAccountingUnderConcurrency(t *testing.T) {
	t.Parallel()
	s, dir := newTestStore(t)
	src, _ := newTestStore(t)
	var contents [][]byte
	for i := range 8 {
		contents = append(contents, randomBlob(100+i*10, uint64(200+i)))
	}
	text := importHandmade(t, src, textBlob(2<<10, 40), "br", "zstd", "gzip")
	header, body := export(t, src, text.Hash)

	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 30 {
				c := contents[(i+w)%len(contents)]
				h := hashOf(c)
				switch (i + w) % 5 {
				case 0, 1:
					s.Put(t.Context(), "", bytes.NewReader(c))
				case 2:
					if f, _, err := s.Open(h, ""); err == nil {
						f.Close()
					}
				case 3:
					s.Delete(h)
				case 4:
					s.Import(t.Context(), text.Hash, header, bytes.NewReader(body))
					if _, _, err := s.EvictLRU(t.Context(), 500, nil); err != nil {
						t.Errorf("EvictLRU: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
	blobs, size := s.Usage()
	var onDisk int
	s.Walk(t.Context(), func(string) error { onDisk++; return nil })
	if blobs != onDisk || size != bytesUnder(t, dir) {
		t.Errorf("Usage = %d blobs, %d bytes; on disk: %d blobs, %d bytes", blobs, size, onDisk, bytesUnder(t, dir))
	}
}

func TestAccKey(t *testing.T) {
	// Not parallel: AllocsPerRun.
	for _, b := range [][]byte{nil, []byte("x"), randomBlob(100, 1)} {
		h := hashOf(b)
		k := accKey(h)
		if got := hex.EncodeToString(k[:]); got != h {
			t.Errorf("accKey(%s) = %s", h, got)
		}
	}
	h := hashOf(nil)
	if n := testing.AllocsPerRun(100, func() { accKey(h) }); n != 0 {
		t.Errorf("accKey allocates %v times", n)
	}
}
