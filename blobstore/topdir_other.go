//go:build !linux

package blobstore

// markTopDir does nothing here: the top-of-hierarchy flag is ext4's.
func markTopDir(string) {}
