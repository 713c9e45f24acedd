package raft

import (
	"bytes"
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
		n := 0
		var found bool
		err := f.view(func(tx *bolt.Tx) error {
			m := tx.Bucket(bucketManifests).Bucket([]byte(deployID))
			if m == nil {
				return nil
			}
			found = true
			c := m.Cursor()
			var k, v []byte
			if after == nil {
				k, v = c.First()
			} else if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
			for ; k != nil && n < scanChunk; k, v = c.Next() {
				if err := fn(k, v); err != nil {
					return err
				}
				n++
				if n == scanChunk {
					after = append(after[:0], k...)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: deploy %q", atoll.ErrNotFound, deployID)
		}
		if n < scanChunk {
			return nil
		}
	}
}
