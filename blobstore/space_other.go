//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package blobstore

import (
	"errors"
	"syscall"
)

// errNoStatfs: free space is not measured on this platform, so only the
// file system's own "disk full" errors guard it.
var errNoStatfs = errors.New("free space is not measured on this platform")

func freeBytes(string) (int64, error) { return 0, errNoStatfs }

func isNoSpaceErrno(err error) bool { return errors.Is(err, syscall.ENOSPC) }
