package raft

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/atoll-hosting/atoll"
)

// referencedChunk bounds the manifest entries one read transaction of
// ReferencedBlobs walks, so that none stays open for long (see view).
const referencedChunk = 1 << 16

// ReferencedBlobs returns the distinct blobs named by the manifest of every
// retained deploy that has not failed, as repair needs them: a blob maps to
// true when only deploys still uploading name it.
//
// It walks the deploys table and each deploy's manifest directly (either
// layout; a compact manifest's blob ids are read once per transaction),
// comparing raw 32-byte hashes, and hex-encodes each distinct blob once: on a state of
// 10M entries over a few thousand blobs that is one map probe per entry,
// not a decoded record, a copied atoll.File and a hex string per entry.
// The walk runs in several short read transactions (at most
// referencedChunk entries each, resuming after the last deploy id), so, like
// a walk over Sites, Deploys and Files, it is not one snapshot: a deploy
// created meanwhile may be missed (the next pass sees it) and one pruned
// meanwhile may still count. It stops with ctx's error.
func (f *FSM) ReferencedBlobs(ctx context.Context) (map[string]bool, error) {
	w := referencedWalk{raw: make(map[[32]byte]bool), sums: make(map[uint64][32]byte)}
	var after []byte // last deploy id walked
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var done bool
		err := f.view(func(tx *bolt.Tx) error {
			var err error
			after, done, err = w.from(tx, after)
			return err
		})
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
	}
	out := make(map[string]bool, len(w.raw))
	for h, pending := range w.raw {
		out[hex.EncodeToString(h[:])] = pending
	}
	return out, nil
}

// referencedWalk is the state of one ReferencedBlobs walk.
type referencedWalk struct {
	raw map[[32]byte]bool // blob -> named only by deploys uploading
	// sums caches the hashes of the compact manifests' blob ids for one
	// read transaction (a restored backup may hand an id out again), so a
	// chunk reads each id's hash once however many manifests name it.
	sums map[uint64][32]byte
}

// mark records that a deploy named blob sum, pending when it is uploading.
func (w *referencedWalk) mark(sum [32]byte, pending bool) {
	if onlyPending, seen := w.raw[sum]; !seen || onlyPending {
		w.raw[sum] = pending
	}
}

// compact marks the blobs of compact manifest v.
func (w *referencedWalk) compact(tx *bolt.Tx, v []byte, pending bool) (int, error) {
	n := 0
	err := eachCompact(v, func(_ []byte, blob uint64) error {
		sum, ok := w.sums[blob]
		if !ok {
			h, _, err := blobHash(tx, blob)
			if err != nil {
				return err
			}
			copy(sum[:], h)
			w.sums[blob] = sum
		}
		w.mark(sum, pending)
		n++
		return nil
	})
	return n, err
}

// from adds the blobs of the deploys after the id after (all from the
// first when nil), until about referencedChunk entries are walked. It
// returns the last deploy id walked and whether the table ended.
func (w *referencedWalk) from(tx *bolt.Tx, after []byte) ([]byte, bool, error) {
	manifests, values := tx.Bucket(bucketManifests), tx.Bucket(bucketManifestValues)
	clear(w.sums)
	c := tx.Bucket(bucketDeploys).Cursor()
	walked := 0
	for k, v := seekAfter(c, after); k != nil; k, v = c.Next() {
		var d struct {
			State atoll.DeployState `json:"state"`
		}
		if err := json.Unmarshal(v, &d); err != nil {
			return nil, false, fmt.Errorf("decode deploy %q: %w", k, err)
		}
		if d.State == atoll.StateFailed {
			continue
		}
		pending := d.State == atoll.StateUploading
		if v := values.Get(k); v != nil {
			n, err := w.compact(tx, v, pending)
			if err != nil {
				return nil, false, fmt.Errorf("manifest of deploy %q: %w", k, err)
			}
			walked += n
		} else if m := manifests.Bucket(k); m != nil {
			var sum [32]byte
			err := m.ForEach(func(_, h []byte) error {
				if len(h) != len(sum) {
					return nil
				}
				copy(sum[:], h)
				w.mark(sum, pending)
				walked++
				return nil
			})
			if err != nil {
				return nil, false, err
			}
		}
		if walked >= referencedChunk {
			return bytes.Clone(k), false, nil
		}
	}
	return nil, true, nil
}
