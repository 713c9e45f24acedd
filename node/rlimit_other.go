//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package node

// raiseDescriptorLimit is a no-op where there is no RLIMIT_NOFILE: the
// limit is unknown (0).
func raiseDescriptorLimit() uint64 { return 0 }

// descriptorLimit is unknown (0) where there is no RLIMIT_NOFILE.
func descriptorLimit() uint64 { return 0 }
