package raft

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/atoll-hosting/atoll"
)

// scanChunk is how many manifest entries ScanManifest reads per read
// transaction: a long read transaction would hold bbolt's mmap lock and
// stall a writer that must grow the file.
const scanChunk = 16 << 10

// ScanManifest calls fn for every entry of a deploy's manifest in path
// order, with the path and the 32 raw bytes of its content hash, and stops
// at fn's first error, which it returns. It returns an error wrapping
// ErrNotFound if the deploy does not exist, also if it is deleted while
// the scan runs.
//
// It is Files without the copies, for a reader that keeps the manifest in
// its own compact form (the edge's index of a large deploy): fn runs inside
// a read transaction, so it must be quick, and path and sum are only valid
// during the call (fn copies what it keeps).
func (f *FSM) ScanManifest(deployID string, fn func(path, sum []byte) error) error {
	var after []byte // last path handed to fn
	for {
		n, err := f.manifestChunk(deployID, after, scanChunk, func(k, v []byte) error {
			after = append(after[:0], k...)
			return fn(k, v)
		})
		if err != nil || n < scanChunk {
			return err
		}
	}
}

// manifestChunk calls fn, in one read transaction, for at most max entries
// of a deploy's manifest in path order, from the first path after after
// (from the start when after is nil). It returns how many it handed out,
// or an error wrapping ErrNotFound if the deploy does not exist.
func (f *FSM) manifestChunk(deployID string, after []byte, max int, fn func(path, sum []byte) error) (int, error) {
	n, found := 0, false
	err := f.view(func(tx *bolt.Tx) error {
		var err error
		found, err = eachEntry(tx, []byte(deployID), after, func(k, v []byte) error {
			if n == max {
				return errStopScan
			}
			n++
			return fn(k, v)
		})
		return err
	})
	if err == nil && !found {
		err = fmt.Errorf("%w: deploy %q", atoll.ErrNotFound, deployID)
	}
	return n, err
}
