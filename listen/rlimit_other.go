//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package listen

// RaiseDescriptorLimit is a no-op where there is no RLIMIT_NOFILE: the
// limit is unknown (0).
func RaiseDescriptorLimit() uint64 { return 0 }

// DescriptorLimit is unknown (0) where there is no RLIMIT_NOFILE.
func DescriptorLimit() uint64 { return 0 }
