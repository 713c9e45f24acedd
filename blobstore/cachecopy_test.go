package blobstore

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitSynced waits until the background syncer of s has nothing left.
func waitSynced(t *testing.T, s *Store) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.unsynced.mu.Lock()
		idle := !s.unsynced.syncing && len(s.unsynced.files) == 0
		s.unsynced.mu.Unlock()
		if idle {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("background syncer still busy after 10 s")
}

func markerTime(t *testing.T, dir string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, unsyncedMarker))
	if err != nil {
		t.Fatalf("read marker: %v", err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("marker %q: %v", b, err)
	}
	return v
}

func TestImportCacheStoresVerifiedCopy(t *testing.T) {
	t.Parallel()
	src, _ := newTestStore(t)
	dst, dstDir := newTestStore(t)
	content := textBlob(16<<10, 41)
	info := put(t, src, content)
	header, body := export(t, src, info.Hash)

	got, err := dst.ImportCache(t.Context(), info.Hash, header, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("ImportCache: %v", err)
	}
	if got.Size != info.Size || len(got.Variants) != len(info.Variants) {
		t.Errorf("ImportCache = %+v, want %+v", got, info)
	}
	if _, err := os.Stat(filepath.Join(dstDir, unsyncedMarker)); err != nil {
		t.Errorf("marker must exist before a copy is renamed unsynced: %v", err)
	}
	if b := readBlob(t, dst, info.Hash, ""); !bytes.Equal(b, content) {
		t.Error("identity bytes differ")
	}
	waitSynced(t, dst)
	if err := dst.Verify(info.Hash); err != nil {
		t.Errorf("Verify after sync: %v", err)
	}
	fi, err := os.Stat(dst.path(info.Hash))
	if err != nil {
		t.Fatal(err)
	}
	if m := markerTime(t, dstDir); m < fi.ModTime().UnixNano() {
		t.Errorf("after the sync the marker (%d) must be past the synced copy's mtime (%d)", m, fi.ModTime().UnixNano())
	}

	// Wrong bytes are refused exactly as Import refuses them.
	other := textBlob(4<<10, 42)
	if _, err := dst.ImportCache(t.Context(), hashOf(other), "size=5", bytes.NewReader([]byte("hello"))); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("ImportCache of wrong bytes: %v, want ErrHashMismatch", err)
	}
}

// A crash can keep the rename of a cache copy but not its data: New must
// find the copy (mtime after the marker's time), verify it and remove it,
// and keep the intact ones.
func TestRecoverUnsyncedRemovesGarbage(t *testing.T) {
	t.Parallel()
	src, _ := newTestStore(t)
	dst, dstDir := newTestStore(t)
	var infos []Info
	for i := range 3 {
		info := put(t, src, textBlob(8<<10, uint64(50+i)))
		header, body := export(t, src, info.Hash)
		if _, err := dst.ImportCache(t.Context(), info.Hash, header, bytes.NewReader(body)); err != nil {
			t.Fatalf("ImportCache: %v", err)
		}
		infos = append(infos, info)
	}
	waitSynced(t, dst)
	// Simulate the crash: the marker says copies after time 0 may be
	// unsynced, and the first copy's data never reached the disk.
	if err := os.WriteFile(filepath.Join(dstDir, unsyncedMarker), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst.path(infos[0].Hash), make([]byte, infos[0].Size), 0o600); err != nil {
		t.Fatal(err)
	}

	re := openTestStore(t, dstDir)
	if re.Has(infos[0].Hash) {
		t.Error("the copy with garbage data is still stored after New")
	}
	for _, info := range infos[1:] {
		if err := re.Verify(info.Hash); err != nil {
			t.Errorf("intact copy %s: %v", info.Hash[:8], err)
		}
	}
	if m := markerTime(t, dstDir); m == 0 {
		t.Error("New must advance the marker after checking")
	}
}

// Copies older than the marker's time were synced before it was written:
// New does not read them again.
func TestRecoverUnsyncedSkipsOlderCopies(t *testing.T) {
	t.Parallel()
	s, dir := newTestStore(t)
	info := put(t, s, textBlob(8<<10, 60))
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(s.path(info.Hash), old, old); err != nil {
		t.Fatal(err)
	}
	flipByte(t, s.path(info.Hash)) // would be removed if it were checked
	if err := os.Chtimes(s.path(info.Hash), old, old); err != nil {
		t.Fatal(err)
	}
	now := strconv.FormatInt(time.Now().UnixNano(), 10)
	if err := os.WriteFile(filepath.Join(dir, unsyncedMarker), []byte(now), 0o644); err != nil {
		t.Fatal(err)
	}
	re := openTestStore(t, dir)
	if !re.Has(info.Hash) {
		t.Error("New checked a blob written before the marker's time")
	}
}

// Close lets the syncer finish its round: once Close returns, the copies
// imported before it are durable and nothing writes in the store's
// folder any more (a caller may remove it).
func TestCloseWaitsForTheSyncer(t *testing.T) {
	t.Parallel()
	src, _ := newTestStore(t)
	dir := t.TempDir()
	dst, err := New(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	info := put(t, src, textBlob(16<<10, 43))
	header, body := export(t, src, info.Hash)
	if _, err := dst.ImportCache(t.Context(), info.Hash, header, bytes.NewReader(body)); err != nil {
		t.Fatalf("ImportCache: %v", err)
	}
	dst.Close()
	dst.unsynced.mu.Lock()
	syncing, unsynced := dst.unsynced.syncing, len(dst.unsynced.files)
	dst.unsynced.mu.Unlock()
	if syncing || unsynced > 0 {
		t.Errorf("after Close: syncer running %v, %d copies not synced; want none", syncing, unsynced)
	}
}
