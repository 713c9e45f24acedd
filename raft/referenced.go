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
// It walks the deploys table and each deploy's manifest directly, comparing
// raw 32-byte hashes, and hex-encodes each distinct blob once: on a state of
// 10M entries over a few thousand blobs that is one map probe per entry,
// not a decoded record, a copied atoll.File and a hex string per entry.
// The walk runs in several short read transactions (at most
// referencedChunk entries each, resuming after the last deploy id), so, like
// a walk over Sites, Deploys and Files, it is not one snapshot: a deploy
// created meanwhile may be missed (the next pass sees it) and one pruned
// meanwhile may still count. It stops with ctx's error.
func (f *FSM) ReferencedBlobs(ctx context.Context) (map[string]bool, error) {
	raw := make(map[[32]byte]bool)
	var after []byte // last deploy id walked
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var done bool
		err := f.view(func(tx *bolt.Tx) error {
			var err error
			after, done, err = referencedFrom(tx, after, raw)
			return err
		})
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
	}
	out := make(map[string]bool, len(raw))
	for h, pending := range raw {
		out[hex.EncodeToString(h[:])] = pending
	}
	return out, nil
}

// referencedFrom adds to raw the blobs of the deploys after the id after
// (all from the first when nil), until about referencedChunk entries are
// walked. It returns the last deploy id walked and whether the table ended.
func referencedFrom(tx *bolt.Tx, after []byte, raw map[[32]byte]bool) ([]byte, bool, error) {
	manifests := tx.Bucket(bucketManifests)
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
		m := manifests.Bucket(k)
		if m == nil {
			continue
		}
		pending := d.State == atoll.StateUploading
		var sum [32]byte
		err := m.ForEach(func(_, h []byte) error {
			if len(h) != len(sum) {
				return nil
			}
			copy(sum[:], h)
			if onlyPending, seen := raw[sum]; !seen || onlyPending {
				raw[sum] = pending
			}
			walked++
			return nil
		})
		if err != nil {
			return nil, false, err
		}
		if walked >= referencedChunk {
			return bytes.Clone(k), false, nil
		}
	}
	return nil, true, nil
}
