package blobstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestQuarantineTakesACorruptCopyOutOfService(t *testing.T) {
	t.Parallel()
	s, dir := newTestStore(t)
	good := textBlob(20<<10, 7)
	info := put(t, s, good)
	other := put(t, s, textBlob(5<<10, 8))
	if len(info.Variants) == 0 {
		t.Fatalf("text blob stored without variants: %+v", info)
	}
	if _, err := s.Stat(info.Hash); err != nil { // now in the Stat cache
		t.Fatal(err)
	}
	if err := s.acct.waitLoaded(t.Context()); err != nil {
		t.Fatal(err)
	}
	blobsBefore, _ := s.Usage()

	identity := filepath.Join(dir, info.Hash[:2], info.Hash)
	flipByte(t, identity)
	if err := s.Verify(info.Hash); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Verify after a flipped byte: %v, want ErrHashMismatch", err)
	}
	corrupt, _ := os.ReadFile(identity)

	qdir, err := s.Quarantine(info.Hash)
	if err != nil {
		t.Fatalf("Quarantine: %v", err)
	}
	if got, want := filepath.Dir(qdir), filepath.Join(dir, QuarantineFolder); got != want {
		t.Errorf("quarantined into %s, want a folder under %s", qdir, want)
	}

	// Gone for every reader, at once, including the Stat cache.
	if _, err := s.Stat(info.Hash); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat after Quarantine: %v, want ErrNotFound", err)
	}
	if s.Has(info.Hash) {
		t.Error("Has after Quarantine: true")
	}
	for _, enc := range append([]string{""}, encodingsOf(info)...) {
		if f, _, err := s.Open(info.Hash, enc); !errors.Is(err, ErrNotFound) {
			if f != nil {
				f.Close()
			}
			t.Errorf("Open(%q) after Quarantine: %v, want ErrNotFound", enc, err)
		}
	}
	if _, _, _, err := s.Export(info.Hash); !errors.Is(err, ErrNotFound) {
		t.Errorf("Export after Quarantine: %v, want ErrNotFound", err)
	}
	if err := s.Verify(info.Hash); !errors.Is(err, ErrNotFound) {
		t.Errorf("Verify after Quarantine: %v, want ErrNotFound", err)
	}
	var walked []string
	if err := s.Walk(t.Context(), func(h string) error { walked = append(walked, h); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(walked, []string{other.Hash}) {
		t.Errorf("Walk after Quarantine: %v, want only %s", walked, other.Hash[:8])
	}
	if blobs, _ := s.Usage(); blobs != blobsBefore-1 {
		t.Errorf("Usage after Quarantine: %d blobs, want %d", blobs, blobsBefore-1)
	}
	// Nothing of it is left in its shard; everything is in the quarantine
	// folder, the corrupt bytes as they were.
	var want []string
	for _, f := range blobFiles(info) {
		want = append(want, filepath.Join(QuarantineFolder, filepath.Base(qdir), filepath.Base(f)))
	}
	want = append(want, blobFiles(other)...)
	for i := range want {
		want[i] = filepath.ToSlash(want[i])
	}
	slices.Sort(want)
	if got := filesUnder(t, dir); !slices.Equal(got, want) {
		t.Errorf("files after Quarantine:\n got %v\nwant %v", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(qdir, info.Hash)); !bytes.Equal(b, corrupt) {
		t.Error("the quarantined identity file is not the corrupt copy")
	}

	// A fresh copy is stored as usual, and a restart leaves the quarantine
	// folder alone without counting or walking it.
	put(t, s, good)
	if err := s.Verify(info.Hash); err != nil {
		t.Errorf("Verify of the fresh copy: %v", err)
	}
	s = openTestStore(t, dir)
	if got := readBlob(t, s, info.Hash, ""); !bytes.Equal(got, good) {
		t.Error("the fresh copy does not read back")
	}
	if _, err := os.Stat(filepath.Join(qdir, info.Hash)); err != nil {
		t.Errorf("quarantined file after a restart: %v", err)
	}
	if err := s.acct.waitLoaded(t.Context()); err != nil {
		t.Fatal(err)
	}
	if blobs, _ := s.Usage(); blobs != 2 {
		t.Errorf("Usage after restart: %d blobs, want 2 (quarantine not counted)", blobs)
	}

	// A second quarantine of the same hash gets its own folder.
	qdir2, err := s.Quarantine(info.Hash)
	if err != nil || qdir2 == qdir {
		t.Errorf("second Quarantine: %q, %v; want a new folder", qdir2, err)
	}
}

func TestQuarantineErrors(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t)
	if _, err := s.Quarantine(hashOf([]byte("absent"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("Quarantine of an absent blob: %v, want ErrNotFound", err)
	}
	if _, err := s.Quarantine("../../etc/passwd"); !errors.Is(err, ErrInvalidHash) {
		t.Errorf("Quarantine of a bad name: %v, want ErrInvalidHash", err)
	}
}

// A crash between the identity's move and the variants' leaves orphan
// variants in the shard: invisible, and removed by New (DESIGN.md Q1, I3).
func TestQuarantineCrashLeavesNothingVisible(t *testing.T) {
	t.Parallel()
	s, dir := newTestStore(t)
	info := put(t, s, textBlob(20<<10, 9))
	qroot := filepath.Join(dir, QuarantineFolder, "crashed")
	if err := os.MkdirAll(qroot, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, info.Hash[:2], info.Hash), filepath.Join(qroot, info.Hash)); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir)
	if s.Has(info.Hash) {
		t.Error("blob visible without its identity file")
	}
	for _, f := range filesUnder(t, filepath.Join(dir, info.Hash[:2])) {
		t.Errorf("left in the shard after restart: %s", f)
	}
}

func TestVerifyPacedReportsEveryByteAndStops(t *testing.T) {
	t.Parallel()
	s, dir := newTestStore(t)
	info := put(t, s, textBlob(300<<10, 10))
	var onDisk int64
	for _, f := range blobFiles(info) {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		onDisk += fi.Size()
	}
	var paced int64
	if err := s.VerifyPaced(info.Hash, func(n int) error { paced += int64(n); return nil }); err != nil {
		t.Fatalf("VerifyPaced: %v", err)
	}
	if paced != onDisk {
		t.Errorf("wait was told of %d bytes, the blob has %d on disk", paced, onDisk)
	}

	stop := errors.New("scrub cancelled")
	calls := 0
	err := s.VerifyPaced(info.Hash, func(int) error { calls++; return stop })
	if !errors.Is(err, stop) || errors.Is(err, ErrHashMismatch) {
		t.Errorf("VerifyPaced with a failing wait: %v, want the wait's error and no mismatch", err)
	}
}
