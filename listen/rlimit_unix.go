//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package listen

import "syscall"

// RaiseDescriptorLimit raises the soft RLIMIT_NOFILE to the hard limit
// (the Go runtime does so too at start on most systems; this makes it the
// node's contract) and returns the soft limit then in force, 0 if unknown.
func RaiseDescriptorLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil {
			lim = raised
		}
	}
	return uint64(lim.Cur)
}

// DescriptorLimit is the soft RLIMIT_NOFILE, 0 if unknown.
func DescriptorLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return uint64(lim.Cur)
}
