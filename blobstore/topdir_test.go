package blobstore

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestNewMakesAFreshTempFolder: every New replaces the temp folder with a
// new one (a new inode, so the file system places it afresh), empty, and
// leaves no other "temp.*" folder, also after a crash left some, while
// every blob stays whole.
func TestNewMakesAFreshTempFolder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTestStore(t, dir)
	kept := put(t, s, textBlob(1<<10, 3))
	before := inodeOf(t, filepath.Join(dir, TempFolder))
	plant(t, filepath.Join(dir, TempFolder, "put-1"), "partial")
	for _, leftover := range []string{"temp.new-00000000000000aa", "temp.old-00000000000000bb"} {
		plant(t, filepath.Join(dir, leftover, "put-2"), "partial") // a crash inside an earlier New
	}
	s.Close()

	s = openTestStore(t, dir)
	if after := inodeOf(t, filepath.Join(dir, TempFolder)); after == before {
		t.Errorf("temp folder kept inode %d across New, want a new folder", after)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), TempFolder+".") {
			t.Errorf("%s left in the store folder after New", e.Name())
		}
	}
	if left, _ := os.ReadDir(filepath.Join(dir, TempFolder)); len(left) != 0 {
		t.Errorf("temp folder not empty after New: %v", left)
	}
	if err := s.Verify(kept.Hash); err != nil {
		t.Errorf("Verify(kept): %v", err)
	}
	if got := put(t, s, textBlob(2<<10, 4)); !s.Has(got.Hash) {
		t.Error("a blob put after the new temp folder is not stored")
	}
}

func inodeOf(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
