//go:build !linux

package client

import "io/fs"

// Elsewhere the hash cache is off (see hashcache.go).
const stampsAvailable = false

func inodeAndCtime(fs.FileInfo) (uint64, int64, bool) { return 0, 0, false }
