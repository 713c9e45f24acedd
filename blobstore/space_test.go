package blobstore

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// A reserve no disk has: every write is refused.
const fullReserve = 1 << 62

func openReserved(t *testing.T, dir string, minFree int64) *Store {
	t.Helper()
	s, err := New(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler), MinFreeBytes: minFree})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() }) // before a tmpfs is unmounted: no file open
	return s
}

// tmpFiles lists the files in the temp folder of the store in dir.
func tmpFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, f := range filesUnder(t, dir) {
		if strings.HasPrefix(f, "temp/") {
			out = append(out, f)
		}
	}
	return out
}

func TestBelowTheReserveWritesAreRefusedAndReadsGoOn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stored := textBlob(10<<10, 20)
	info := put(t, openTestStore(t, dir), stored)

	s := openReserved(t, dir, fullReserve)
	before := filesUnder(t, dir)
	fresh := textBlob(10<<10, 21)
	_, err := s.Put(t.Context(), "", bytes.NewReader(fresh))
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "free") {
		t.Fatalf("Put below the reserve: %v, want ErrNoSpace saying how much is free", err)
	}
	hdr, body, _, err := s.Export(info.Hash)
	if err != nil {
		t.Fatal(err)
	}
	peerDir := t.TempDir()
	if _, err := openReserved(t, peerDir, fullReserve).Import(t.Context(), info.Hash, hdr, body); !errors.Is(err, ErrNoSpace) {
		t.Errorf("Import below the reserve: %v, want ErrNoSpace", err)
	}
	body.Close()
	if got := filesUnder(t, peerDir); len(got) != 0 {
		t.Errorf("a refused Import left files: %v", got)
	}
	if got := filesUnder(t, dir); !equalStrings(got, before) {
		t.Errorf("a refused Put changed the store:\nbefore %v\nafter  %v", before, got)
	}

	// What is stored stays readable, and a Put of it changes nothing.
	if got := readBlob(t, s, info.Hash, ""); !bytes.Equal(got, stored) {
		t.Error("stored blob does not read back below the reserve")
	}
	if err := s.Verify(info.Hash); err != nil {
		t.Errorf("Verify below the reserve: %v", err)
	}
	if _, err := s.Put(t.Context(), info.Hash, bytes.NewReader(stored)); err != nil {
		t.Errorf("Put of a stored blob below the reserve: %v, want success (nothing to write)", err)
	}
}

func TestReserveRecoversWhenSpaceReturns(t *testing.T) {
	t.Parallel()
	s, dir := newTestStore(t)
	var free atomic.Int64
	s.space = spaceGuard{minFree: 1 << 20, free: func(string) (int64, error) { return free.Load(), nil }}

	free.Store(512 << 10)
	b := textBlob(64<<10, 22)
	if _, err := s.Put(t.Context(), "", bytes.NewReader(b)); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Put with 512 KiB free of a 1 MiB reserve: %v, want ErrNoSpace", err)
	}
	free.Store(1 << 30)
	info, err := s.Put(t.Context(), "", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Put once space returned: %v", err)
	}
	if got := readBlob(t, s, info.Hash, ""); !bytes.Equal(got, b) {
		t.Error("blob stored after recovery does not read back")
	}
	if err := s.WaitCompressed(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := tmpFiles(t, dir); len(got) != 0 {
		t.Errorf("temp files left: %v", got)
	}
}

// crossedOnceSpooled is a reserve of 1 MiB on a disk with plenty of
// room at the first check (before a write reads its body) and 1 KiB free
// at every later one (once the body is spooled).
func crossedOnceSpooled() spaceGuard {
	var calls atomic.Int64
	return spaceGuard{minFree: 1 << 20, free: func(string) (int64, error) {
		if calls.Add(1) == 1 {
			return 1 << 30, nil
		}
		return 1 << 10, nil
	}}
}

// The reserve is checked again once the body is spooled: a blob that would
// cross it is refused, and its temp file removed.
func TestReserveCheckedAfterTheBody(t *testing.T) {
	t.Parallel()
	s, dir := newTestStore(t)
	s.space = crossedOnceSpooled()
	b := textBlob(64<<10, 23)
	if _, err := s.Put(t.Context(), "", bytes.NewReader(b)); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Put crossing the reserve: %v, want ErrNoSpace", err)
	}
	if s.Has(hashOf(b)) {
		t.Error("refused blob is visible")
	}
	if got := tmpFiles(t, dir); len(got) != 0 {
		t.Errorf("temp files left: %v", got)
	}
}

// A batch is measured against the reserve again once every body is in
// its temp file: a batch that would cross it is refused whole, and its
// temp files removed.
func TestPutBatchReserveCheckedAfterTheBodies(t *testing.T) {
	t.Parallel()
	s, dir := newTestStore(t)
	s.space = crossedOnceSpooled()
	hashes, blobs := testBatch()
	if _, err := s.PutBatch(t.Context(), batchOf(hashes, blobs)); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("PutBatch crossing the reserve: %v, want ErrNoSpace", err)
	}
	for _, h := range hashes {
		if s.Has(h) {
			t.Errorf("blob %s of a refused batch is visible", h)
		}
	}
	if got := filesUnder(t, dir); len(got) != 0 {
		t.Errorf("files left by a refused batch: %v", got)
	}
}

func TestNoSpaceWrapsTheFileSystemsError(t *testing.T) {
	t.Parallel()
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		err := noSpace(&fs.PathError{Op: "write", Path: "temp/put-1", Err: errno})
		if !errors.Is(err, ErrNoSpace) || !errors.Is(err, errno) {
			t.Errorf("noSpace(%v) = %v, want ErrNoSpace wrapping it", errno, err)
		}
	}
	other := &fs.PathError{Op: "write", Path: "temp/put-1", Err: syscall.EIO}
	if err := noSpace(other); errors.Is(err, ErrNoSpace) {
		t.Errorf("noSpace(EIO) = %v, want it unchanged", err)
	}
}

// TestRealDiskFull fills a real (tmpfs) file system: the write fails with
// ENOSPC, mapped to ErrNoSpace, with no temp file left, and the store takes
// writes again once space is freed. It needs root (mount); skipped
// otherwise.
func TestRealDiskFull(t *testing.T) {
	dir := mountTmpfs(t, "2m")
	s := openReserved(t, filepath.Join(dir, "blobs"), 0)
	small := put(t, s, textBlob(8<<10, 25))
	filler := filepath.Join(dir, "filler")
	fillDisk(t, filler, 256<<10)

	big := randomBlob(1<<20, 26)
	_, err := s.Put(t.Context(), "", bytes.NewReader(big))
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put on a full disk: %v, want ErrNoSpace wrapping ENOSPC", err)
	}
	if got := tmpFiles(t, filepath.Join(dir, "blobs")); len(got) != 0 {
		t.Errorf("temp files left on the full disk: %v", got)
	}
	if got := readBlob(t, s, small.Hash, ""); len(got) != 8<<10 {
		t.Error("stored blob unreadable on the full disk")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(t.Context(), "", bytes.NewReader(big)); err != nil {
		t.Errorf("Put once space returned: %v", err)
	}
}

// mountTmpfs mounts a tmpfs of the given size on a temp folder, unmounted
// at the end of the test; it skips the test when it cannot (not root, no
// mount, a container without the capability).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	if _, err := exec.LookPath("mount"); err != nil {
		t.Skip("no mount command")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes path until the file system holding it has about leave
// bytes free.
func fillDisk(t *testing.T, path string, leave int64) {
	t.Helper()
	free, err := freeBytes(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if free <= leave {
		return
	}
	if err := os.WriteFile(path, make([]byte, free-leave), 0o600); err != nil {
		t.Fatalf("fill the disk: %v", err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
