//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package blobstore

import (
	"errors"
	"syscall"
)

// freeBytes is statfs(2)'s f_bavail times the block size: what a process
// without root's reserved blocks may still write.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// isNoSpaceErrno reports a write refused because the file system, or the
// user's quota on it, is full.
func isNoSpaceErrno(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
