package blobstore

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStoreFolderIsATopDirectory: on a file system with the flag (ext4),
// New marks the store folder as the top of a hierarchy, so the Orlov
// allocator spreads the folders made in it.
func TestStoreFolderIsATopDirectory(t *testing.T) {
	t.Parallel()
	s, dir := newTestStore(t)
	defer s.Close()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	flags, err := unix.IoctlGetUint32(int(d.Fd()), unix.FS_IOC_GETFLAGS)
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
		t.Skipf("the file system of %s has no inode flags: %v", dir, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.EXT4_SUPER_MAGIC {
		t.Skipf("%s is not on ext2/3/4 (magic %#x)", dir, st.Type)
	}
	if flags&fsTopDirFlag == 0 {
		t.Errorf("store folder flags %#x lack FS_TOPDIR_FL", flags)
	}
}
