package raft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/atoll-hosting/atoll"
)

// A deploy's manifest is in one of two layouts (DESIGN.md, "FSM layout"):
//
//   - bucket: a nested bucket of manifests named by the deploy id, path ->
//     32 raw hash bytes. Every manifest below atoll.LevelCompactManifests,
//     and from it those of deploys declaring more than compactMaxFiles.
//   - compact: one value of manifest_values under the deploy id: the
//     format byte compactFormat, then per entry in path order the uvarint
//     length of the prefix shared with the previous path, the uvarint
//     length of the rest, the rest, and the uvarint id of the blob.
//     blob_ids maps 32 raw hash bytes to a blob id and blob_hashes maps
//     BE(id) back to the hash and the number of compact manifests naming
//     it (uvarint refs). An id whose refs reach 0 is deleted from both
//     tables in the same transaction, so they hold only the blobs live
//     compact manifests name; ids come from meta's next_blob_id and are
//     not handed out again (a restored backup's older next_blob_id aside:
//     so a reader caches an id's hash for one read transaction only).
//
// A deploy has at most one of the two; readers look for the compact value
// first. The layout is chosen once, at CreateDeploy, and kept for the
// deploy's life.

// compactMaxFiles is the most files a deploy may declare to get a compact
// manifest. It bounds what one lookup walks (File reads the value up to
// the path: at 256 entries a lookup costs 1.2-1.6x a bucket's,
// BenchmarkFileRandom) and what an AddFiles rewrites (a batch decodes the
// value and writes it again whole).
const compactMaxFiles = 256

// compactFormat is the first byte of a compact manifest value.
const compactFormat = 1

// keyNextBlobID (in meta) is the next blob id to hand out, in decimal;
// absent means 1.
var keyNextBlobID = []byte("next_blob_id")

// errStopScan ends a manifest walk early without an error.
var errStopScan = errors.New("stop scan")

// errCorruptManifest is a compact manifest value that does not decode.
var errCorruptManifest = errors.New("corrupt compact manifest")

// compactEntry is one entry of a compact manifest.
type compactEntry struct {
	path string
	blob uint64
}

// nextCompact decodes the entry at the start of v into path (whose bytes
// are those of the previous entry's path) and returns the new path, the
// blob id and the rest of v.
func nextCompact(v, path []byte) ([]byte, uint64, []byte, error) {
	shared, n := binary.Uvarint(v)
	if n <= 0 {
		return nil, 0, nil, errCorruptManifest
	}
	v = v[n:]
	rest, n := binary.Uvarint(v)
	if n <= 0 || shared > uint64(len(path)) || rest > uint64(len(v)-n) {
		return nil, 0, nil, errCorruptManifest
	}
	v = v[n:]
	path = append(path[:shared], v[:rest]...)
	v = v[rest:]
	blob, n := binary.Uvarint(v)
	if n <= 0 {
		return nil, 0, nil, errCorruptManifest
	}
	return path, blob, v[n:], nil
}

// eachCompact calls fn for every entry of compact manifest v in path
// order; path is only valid during the call. It stops at fn's first error
// and returns it.
func eachCompact(v []byte, fn func(path []byte, blob uint64) error) error {
	if len(v) == 0 || v[0] != compactFormat {
		return errCorruptManifest
	}
	v = v[1:]
	var path []byte
	for len(v) > 0 {
		var blob uint64
		var err error
		if path, blob, v, err = nextCompact(v, path); err != nil {
			return err
		}
		if err := fn(path, blob); err != nil {
			return err
		}
	}
	return nil
}

// findCompact returns the blob id of path want in compact manifest v. It
// is the serving path's lookup, so it copies no path: entries are sorted
// and unique, so with m the length of the prefix the last entry read
// (below want) shares with want, an entry sharing more than m bytes with
// the previous one is below want too and is skipped unread, one sharing
// fewer is above it (a miss), and only one sharing exactly m is compared.
// v must be as encodeCompact writes it (each entry sharing the longest
// prefix with the previous one), as every stored value is.
func findCompact(v, want []byte) (uint64, bool, error) {
	if len(v) == 0 || v[0] != compactFormat {
		return 0, false, errCorruptManifest
	}
	v = v[1:]
	m, prevLen := 0, 0
	for len(v) > 0 {
		shared, n := binary.Uvarint(v)
		if n <= 0 {
			return 0, false, errCorruptManifest
		}
		v = v[n:]
		rest, n := binary.Uvarint(v)
		if n <= 0 || shared > uint64(prevLen) || rest > uint64(len(v)-n) {
			return 0, false, errCorruptManifest
		}
		suffix := v[n : n+int(rest)]
		v = v[n+int(rest):]
		blob, n := binary.Uvarint(v)
		if n <= 0 {
			return 0, false, errCorruptManifest
		}
		v = v[n:]
		prevLen = int(shared) + int(rest)
		switch s := int(shared); {
		case s > m:
			continue
		case s < m:
			return 0, false, nil
		}
		k := 0
		for k < len(suffix) && m+k < len(want) && suffix[k] == want[m+k] {
			k++
		}
		switch {
		case k == len(suffix) && m+k == len(want):
			return blob, true, nil
		case k == len(suffix): // a prefix of want: below it
			m += k
		case m+k == len(want) || suffix[k] > want[m+k]: // above want
			return 0, false, nil
		default: // below want
			m += k
		}
	}
	return 0, false, nil
}

// decodeCompact returns the entries of compact manifest v.
func decodeCompact(v []byte) ([]compactEntry, error) {
	var out []compactEntry
	err := eachCompact(v, func(path []byte, blob uint64) error {
		out = append(out, compactEntry{string(path), blob})
		return nil
	})
	return out, err
}

// encodeCompact encodes entries, which are sorted by path, each path once.
func encodeCompact(entries []compactEntry) []byte {
	out := []byte{compactFormat}
	prev := ""
	for _, e := range entries {
		shared := 0
		for shared < len(prev) && shared < len(e.path) && prev[shared] == e.path[shared] {
			shared++
		}
		out = binary.AppendUvarint(out, uint64(shared))
		out = binary.AppendUvarint(out, uint64(len(e.path)-shared))
		out = append(out, e.path[shared:]...)
		out = binary.AppendUvarint(out, e.blob)
		prev = e.path
	}
	return out
}

// blobKey is blob_hashes' key of blob id.
func blobKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// blobHash returns the 32 raw hash bytes of blob id (valid for the
// transaction) and its refs.
func blobHash(tx *bolt.Tx, id uint64) ([]byte, uint64, error) {
	v := tx.Bucket(bucketBlobHashes).Get(blobKey(id))
	if len(v) <= 32 {
		return nil, 0, fmt.Errorf("blob id %d: not in %s", id, bucketBlobHashes)
	}
	refs, n := binary.Uvarint(v[32:])
	if n <= 0 {
		return nil, 0, fmt.Errorf("blob id %d: bad refs", id)
	}
	return v[:32], refs, nil
}

// eachEntry calls fn, in tx, for the entries of deploy's manifest after
// path after (from the first when after is nil) in path order, with the
// path and the 32 raw bytes of the hash, in either layout; both are only
// valid during the call. fn may return errStopScan to end the walk. found
// is false when the deploy has no manifest.
func eachEntry(tx *bolt.Tx, deploy, after []byte, fn func(path, sum []byte) error) (found bool, err error) {
	if v := tx.Bucket(bucketManifestValues).Get(deploy); v != nil {
		err := eachCompact(v, func(path []byte, blob uint64) error {
			if after != nil && bytes.Compare(path, after) <= 0 {
				return nil
			}
			sum, _, err := blobHash(tx, blob)
			if err != nil {
				return err
			}
			return fn(path, sum)
		})
		if errors.Is(err, errStopScan) {
			return true, nil
		}
		return true, err
	}
	m := tx.Bucket(bucketManifests).Bucket(deploy)
	if m == nil {
		return false, nil
	}
	c := m.Cursor()
	for k, v := seekAfter(c, after); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			if errors.Is(err, errStopScan) {
				return true, nil
			}
			return true, err
		}
	}
	return true, nil
}

// lookupEntry returns the 32 raw hash bytes of path in deploy's manifest
// (valid for the transaction), or nil when the deploy or the path is not
// there.
func lookupEntry(tx *bolt.Tx, deploy, path []byte) ([]byte, error) {
	if v := tx.Bucket(bucketManifestValues).Get(deploy); v != nil {
		blob, ok, err := findCompact(v, path)
		if err != nil || !ok {
			return nil, err
		}
		sum, _, err := blobHash(tx, blob)
		return sum, err
	}
	if m := tx.Bucket(bucketManifests).Bucket(deploy); m != nil {
		if v := m.Get(path); len(v) == 32 {
			return v, nil
		}
	}
	return nil, nil
}

// manifestLookup returns a lookup of paths in deploy's manifest for a
// command that checks many paths: a compact manifest is decoded once and
// searched by bisection (lookupEntry would decode it again for every
// path). get answers the 32 raw hash bytes, or nil when the path is not
// there; found is false when the deploy has no manifest.
func manifestLookup(tx *bolt.Tx, deploy []byte) (get func(path string) ([]byte, error), found bool, err error) {
	if v := tx.Bucket(bucketManifestValues).Get(deploy); v != nil {
		entries, err := decodeCompact(v)
		if err != nil {
			return nil, true, fmt.Errorf("manifest of deploy %q: %w", deploy, err)
		}
		return func(path string) ([]byte, error) {
			i, ok := slices.BinarySearchFunc(entries, path, func(e compactEntry, p string) int { return cmpString(e.path, p) })
			if !ok {
				return nil, nil
			}
			sum, _, err := blobHash(tx, entries[i].blob)
			return sum, err
		}, true, nil
	}
	m := tx.Bucket(bucketManifests).Bucket(deploy)
	if m == nil {
		return func(string) ([]byte, error) { return nil, nil }, false, nil
	}
	return func(path string) ([]byte, error) { return m.Get([]byte(path)), nil }, true, nil
}

// createManifest makes deploy id's empty manifest, compact when the state
// is at atoll.LevelCompactManifests and the deploy declares at most
// compactMaxFiles files.
func (a *applier) createManifest(id string, files int) error {
	if a.atLevel(atoll.LevelCompactManifests) && files <= compactMaxFiles {
		return a.bucket(bucketManifestValues).Put([]byte(id), encodeCompact(nil))
	}
	_, err := a.bucket(bucketManifests).CreateBucket([]byte(id))
	return err
}

// addEntries adds to deploy id's manifest the entries add (paths it does
// not hold, each once) with sums[i] the 32 raw hash bytes of add[i]. The
// caller has validated everything: this only writes. In the bucket
// layout, entries sorted after every path present are appends, and fill
// their pages completely (bbolt splits at half a page otherwise).
func (a *applier) addEntries(id string, add []atoll.File, sums [][]byte) error {
	if len(add) == 0 {
		return nil
	}
	if v := a.bucket(bucketManifestValues).Get([]byte(id)); v != nil {
		old, err := decodeCompact(v)
		if err != nil {
			return fmt.Errorf("manifest of deploy %q: %w", id, err)
		}
		entries := slices.Clone(old)
		for i, f := range add {
			blob, err := a.internBlob(sums[i])
			if err != nil {
				return err
			}
			entries = append(entries, compactEntry{f.Path, blob})
		}
		slices.SortFunc(entries, func(x, y compactEntry) int { return cmpString(x.path, y.path) })
		return a.writeCompact(id, old, entries)
	}
	m := a.bucket(bucketManifests).Bucket([]byte(id))
	if m == nil {
		return fmt.Errorf("deploy %q has no manifest", id)
	}
	if len(add) > 0 && slices.IsSortedFunc(add, func(x, y atoll.File) int { return cmpString(x.Path, y.Path) }) {
		if last, _ := m.Cursor().Last(); last == nil || string(last) < add[0].Path {
			m.FillPercent = 1 // appends in key order: no later insert splits these pages
		}
	}
	for i, f := range add {
		// bbolt keeps keys and values until commit: fresh slices each time.
		if err := m.Put([]byte(f.Path), bytes.Clone(sums[i])); err != nil {
			return err
		}
	}
	return nil
}

func cmpString(x, y string) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// dropManifest deletes deploy id's manifest in either layout; empty
// leaves an empty one of the same layout in its place.
func (a *applier) dropManifest(id string, empty bool) error {
	if v := a.bucket(bucketManifestValues).Get([]byte(id)); v != nil {
		old, err := decodeCompact(v)
		if err != nil {
			return fmt.Errorf("manifest of deploy %q: %w", id, err)
		}
		if empty {
			return a.writeCompact(id, old, nil)
		}
		if err := a.adjustRefs(old, nil); err != nil {
			return err
		}
		return a.bucket(bucketManifestValues).Delete([]byte(id))
	}
	ms := a.bucket(bucketManifests)
	if err := ms.DeleteBucket([]byte(id)); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
		return err
	}
	if !empty {
		return nil
	}
	_, err := ms.CreateBucket([]byte(id))
	return err
}

// writeCompact stores entries as deploy id's compact manifest, which held
// old, and moves the refs of the blobs that appear or disappear.
func (a *applier) writeCompact(id string, old, entries []compactEntry) error {
	if err := a.adjustRefs(old, entries); err != nil {
		return err
	}
	return a.bucket(bucketManifestValues).Put([]byte(id), encodeCompact(entries))
}

// distinctBlobs returns the distinct blob ids of entries, sorted.
func distinctBlobs(entries []compactEntry) []uint64 {
	ids := make([]uint64, len(entries))
	for i, e := range entries {
		ids[i] = e.blob
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// adjustRefs counts one more reference for every blob named by after and
// not by before, one fewer for every blob named by before and not by
// after, and deletes a blob whose refs reach 0 from both tables.
func (a *applier) adjustRefs(before, after []compactEntry) error {
	was, is := distinctBlobs(before), distinctBlobs(after)
	for _, id := range is {
		if _, found := slices.BinarySearch(was, id); !found {
			if err := a.addRef(id, 1); err != nil {
				return err
			}
		}
	}
	for _, id := range was {
		if _, found := slices.BinarySearch(is, id); !found {
			if err := a.addRef(id, -1); err != nil {
				return err
			}
		}
	}
	return nil
}

// addRef adds delta to blob id's refs.
func (a *applier) addRef(id uint64, delta int) error {
	sum, refs, err := blobHash(a.tx, id)
	if err != nil {
		return err
	}
	sum = bytes.Clone(sum)
	switch {
	case delta < 0 && refs == 0:
		return fmt.Errorf("blob id %d: refs below 0", id)
	case delta < 0 && refs == 1:
		if err := a.bucket(bucketBlobIDs).Delete(sum); err != nil {
			return err
		}
		return a.bucket(bucketBlobHashes).Delete(blobKey(id))
	}
	refs = uint64(int64(refs) + int64(delta))
	return a.bucket(bucketBlobHashes).Put(blobKey(id), binary.AppendUvarint(sum, refs))
}

// internBlob returns the id of the blob with 32 raw hash bytes sum,
// handing out the next id (with refs 0, which the caller's writeCompact
// raises) when the blob has none.
func (a *applier) internBlob(sum []byte) (uint64, error) {
	ids := a.bucket(bucketBlobIDs)
	if v := ids.Get(sum); v != nil {
		id, n := binary.Uvarint(v)
		if n <= 0 {
			return 0, fmt.Errorf("blob %x: bad id", sum)
		}
		return id, nil
	}
	meta := a.bucket(bucketMeta)
	id := uint64(1)
	if v := meta.Get(keyNextBlobID); v != nil {
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("meta %s: %w", keyNextBlobID, err)
		}
		id = n
	}
	sum = bytes.Clone(sum)
	if err := meta.Put(keyNextBlobID, []byte(strconv.FormatUint(id+1, 10))); err != nil {
		return 0, err
	}
	if err := ids.Put(sum, binary.AppendUvarint(nil, id)); err != nil {
		return 0, err
	}
	return id, a.bucket(bucketBlobHashes).Put(blobKey(id), binary.AppendUvarint(bytes.Clone(sum), 0))
}
