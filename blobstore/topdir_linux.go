package blobstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// fsTopDirFlag is FS_TOPDIR_FL (chattr +T): the folder is the top of a
// hierarchy for ext4's Orlov allocator.
const fsTopDirFlag = 0x00020000

// markTopDir sets the top-of-hierarchy flag on dir where the file system
// has it (ext2/3/4), so that each new folder made in dir is placed by
// ext4's Orlov allocator in a block group of its own choosing, one with
// free inodes and few folders, instead of beside dir (DESIGN.md,
// "Placement of the temp folder"). Best effort: any failure (another file
// system, no permission) leaves the default placement.
func markTopDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	defer d.Close()
	fd := int(d.Fd())
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil || flags&fsTopDirFlag != 0 {
		return
	}
	unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|fsTopDirFlag))
}
