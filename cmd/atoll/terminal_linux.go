package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// fileIsTerminal reports whether f is a terminal: whether it answers the
// terminal attributes ioctl. A character device alone is not enough:
// /dev/null is one, and a deploy whose stderr went there wrote a progress
// line per file into it.
func fileIsTerminal(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var ioErr error
	if err := rc.Control(func(fd uintptr) {
		_, ioErr = unix.IoctlGetTermios(int(fd), unix.TCGETS)
	}); err != nil {
		return false
	}
	return ioErr == nil
}
