package raft

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/atoll-hosting/atoll"

	bolt "go.etcd.io/bbolt"
)

// layouts is where each of the FSM's deploys keeps its manifest:
// deploy id -> "compact", "bucket" or "" (none).
func (h *fsmHarness) layouts(ids ...string) map[string]string {
	h.t.Helper()
	out := map[string]string{}
	h.view(func(tx *bolt.Tx) error {
		for _, id := range ids {
			switch {
			case tx.Bucket(bucketManifestValues).Get([]byte(id)) != nil:
				out[id] = "compact"
			case tx.Bucket(bucketManifests).Bucket([]byte(id)) != nil:
				out[id] = "bucket"
			default:
				out[id] = ""
			}
		}
		return nil
	})
	return out
}

// view runs fn in a read transaction of the harness's FSM.
func (h *fsmHarness) view(fn func(tx *bolt.Tx) error) {
	h.t.Helper()
	if err := h.f.view(fn); err != nil {
		h.t.Fatal(err)
	}
}

// blobTable returns the interned blobs: hex hash -> refs, and checks that
// blob_ids and blob_hashes are each other's inverse.
func (h *fsmHarness) blobTable() map[string]uint64 {
	h.t.Helper()
	out := map[string]uint64{}
	h.view(func(tx *bolt.Tx) error {
		n := 0
		err := tx.Bucket(bucketBlobIDs).ForEach(func(sum, v []byte) error {
			n++
			id, _ := binary.Uvarint(v)
			got, refs, err := blobHash(tx, id)
			if err != nil || !bytes.Equal(got, sum) {
				return fmt.Errorf("blob_ids %x -> %d -> %x, %v", sum, id, got, err)
			}
			out[fmt.Sprintf("%x", sum)] = refs
			return nil
		})
		if m := tx.Bucket(bucketBlobHashes).Stats().KeyN; err == nil && m != n {
			err = fmt.Errorf("blob_hashes has %d ids, blob_ids %d", m, n)
		}
		return err
	})
	return out
}

// filesOf is manifest(n) with paths under dir and hashes of blob names
// shared by every deploy that uses the same names.
func filesOf(dir string, n int) []atoll.File {
	out := make([]atoll.File, n)
	for i := range out {
		out[i] = atoll.File{Path: fmt.Sprintf("/%s/%04d.html", dir, i), Hash: hashOf(fmt.Sprint("blob", i%7))}
	}
	return out
}

// checkManifest checks every reader of deploy id's manifest against want
// (sorted): File for every path and for misses around them, Files,
// ScanManifest.
func (h *fsmHarness) checkManifest(id string, want []atoll.File) {
	h.t.Helper()
	if got := h.files(id); !slices.Equal(got, want) {
		h.t.Fatalf("Files(%s): %d entries %v..., want %d", id, len(got), got[:min(3, len(got))], len(want))
	}
	var scanned []atoll.File
	if err := h.f.ScanManifest(id, func(p, sum []byte) error {
		scanned = append(scanned, atoll.File{Path: string(p), Hash: fmt.Sprintf("%x", sum)})
		return nil
	}); err != nil || !slices.Equal(scanned, want) {
		h.t.Fatalf("ScanManifest(%s): %d entries, %v; want %d", id, len(scanned), err, len(want))
	}
	for _, f := range want {
		if got, err := h.f.File(id, f.Path); err != nil || got != f.Hash {
			h.t.Fatalf("File(%s, %s) = %q, %v; want %q", id, f.Path, got, err, f.Hash)
		}
		for _, miss := range []string{f.Path + "/index.html", f.Path[:len(f.Path)-1], f.Path + "x"} {
			if _, err := h.f.File(id, miss); !errors.Is(err, atoll.ErrNotFound) {
				h.t.Fatalf("File(%s, %s): %v, want ErrNotFound", id, miss, err)
			}
		}
	}
}

// TestCompactManifestLayouts: at LevelCompactManifests a deploy of at most
// compactMaxFiles files gets a compact manifest and a larger one a bucket,
// while deploys made below the level keep their buckets; every reader
// answers alike for all of them, through AddFiles in several batches,
// resends, a conflicting hash and MarkReady.
func TestCompactManifestLayouts(t *testing.T) {
	h := newFSM(t)
	h.must(SetFeatureLevel{Level: atoll.LevelDeployBase}, CreateSite{Name: "blog", Created: t0})
	old := filesOf("old", 30)
	h.readyDeploy("blog", "old", old)
	h.must(SetFeatureLevel{Level: atoll.LevelCompactManifests})

	small, edge, big := filesOf("s", 200), filesOf("e", compactMaxFiles), filesOf("b", compactMaxFiles+1)
	h.must(CreateDeploy{ID: "small", Site: "blog", Files: len(small), Created: t0})
	// Three batches out of order: the value is rewritten sorted each time.
	for _, part := range [][]atoll.File{small[150:], small[:50], small[50:150]} {
		h.must(AddFiles{Deploy: "small", Files: part})
	}
	h.must(AddFiles{Deploy: "small", Files: small[:10]}) // a resend
	if err := h.apply(AddFiles{Deploy: "small", Files: []atoll.File{{Path: small[0].Path, Hash: hashOf("other")}}}); !errors.Is(err, atoll.ErrConflict) {
		t.Fatalf("AddFiles of another hash for a present path: %v, want ErrConflict", err)
	}
	h.must(MarkReady{Deploy: "small", Bytes: 1}, AddFiles{Deploy: "small", Files: small[5:50]})
	h.readyDeploy("blog", "edge", edge)
	h.readyDeploy("blog", "big", big)

	want := map[string]string{"old": "bucket", "small": "compact", "edge": "compact", "big": "bucket"}
	if got := h.layouts("old", "small", "edge", "big"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("layouts %v, want %v", got, want)
	}
	for id, files := range map[string][]atoll.File{"old": old, "small": small, "edge": edge, "big": big} {
		h.checkManifest(id, files)
		if d := h.deploy(id); d.Received != len(files) || d.State != atoll.StateReady {
			t.Errorf("deploy %s: %+v, want ready with %d received", id, d, len(files))
		}
	}
	blobs, err := h.f.ReferencedBlobs(context.Background())
	if err != nil || len(blobs) != 7 {
		t.Errorf("ReferencedBlobs: %d blobs, %v; want 7", len(blobs), err)
	}
	if got := h.blobTable(); len(got) != 7 || got[hashOf("blob0")] != 2 {
		t.Errorf("blob table %v, want 7 blobs, each named by the 2 compact manifests", got)
	}
}

// TestCompactManifestRefs: the blob tables hold exactly the blobs live
// compact manifests name, with how many name each: FailDeploy's
// DropFiles, pruning and DeleteSite take references away, a blob no
// manifest names leaves both tables, and an id is never handed out again.
func TestCompactManifestRefs(t *testing.T) {
	h := newFSM(t)
	h.must(SetFeatureLevel{Level: atoll.LevelCompactManifests},
		CreateSite{Name: "blog", Created: t0}, CreateSite{Name: "shop", Created: t0})
	h.readyDeploy("blog", "b1", filesOf("b", 3))  // blobs 0-2
	h.readyDeploy("shop", "s1", filesOf("s", 10)) // blobs 0-6
	h.must(CreateDeploy{ID: "up", Site: "shop", Files: 5, Created: t0},
		AddFiles{Deploy: "up", Files: []atoll.File{{Path: "/x", Hash: hashOf("only-up")}}})
	if got := h.blobTable(); len(got) != 8 || got[hashOf("blob0")] != 2 || got[hashOf("blob5")] != 1 || got[hashOf("only-up")] != 1 {
		t.Fatalf("blob table %v", got)
	}
	if blobs, _ := h.f.ReferencedBlobs(context.Background()); !blobs[hashOf("only-up")] || blobs[hashOf("blob0")] {
		t.Errorf("ReferencedBlobs: %v, want only-up pending alone", blobs)
	}

	h.must(FailDeploy{Deploy: "up", Reason: "gave up", DropFiles: true})
	if got := h.blobTable(); len(got) != 7 {
		t.Errorf("after DropFiles: blob table %v, want only-up gone", got)
	}
	if got := h.files("up"); len(got) != 0 {
		t.Errorf("the failed deploy's manifest: %v, want empty", got)
	}
	h.must(DeleteSite{Name: "shop"})
	if got := h.blobTable(); len(got) != 3 || got[hashOf("blob0")] != 1 {
		t.Errorf("after DeleteSite shop: blob table %v, want blobs 0-2 once", got)
	}
	// Retain 1: publishing b2 then b3 prunes b1 and then b2.
	h.must(UpdateSite{Name: "blog", Retain: 1}, Publish{Deploy: "b1", At: t0})
	h.readyDeploy("blog", "b2", []atoll.File{{Path: "/a", Hash: hashOf("two")}})
	h.must(Publish{Deploy: "b2", At: t0})
	h.readyDeploy("blog", "b3", []atoll.File{{Path: "/a", Hash: hashOf("blob0")}})
	h.must(Publish{Deploy: "b3", At: t0})
	if got := h.blobTable(); fmt.Sprint(got) != fmt.Sprint(map[string]uint64{hashOf("blob0"): 1}) {
		t.Errorf("after pruning: blob table %v, want blob0 once", got)
	}
	h.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketBlobIDs).Get(mustHex(t, hashOf("blob0"))); v[0] != 10 {
			t.Errorf("blob0 has id %d after 9 blobs were interned, want 10 (interned again)", v[0])
		}
		return nil
	})
}

// TestDeployBaseAcrossLayouts: a deploy made from a base copies the base's
// manifest less Remove from either layout to either, and only the
// difference follows.
func TestDeployBaseAcrossLayouts(t *testing.T) {
	h := newFSM(t)
	h.must(SetFeatureLevel{Level: atoll.LevelDeployBase}, CreateSite{Name: "blog", Created: t0})
	oldFiles := filesOf("a", 40)
	h.readyDeploy("blog", "old", oldFiles) // a bucket, from before the level
	h.must(SetFeatureLevel{Level: atoll.LevelCompactManifests})
	bigFiles := filesOf("a", compactMaxFiles+50)
	h.readyDeploy("blog", "big", bigFiles) // a bucket: too many files

	rows := []struct {
		id, base, layout string
		remove           []atoll.File
		add              []atoll.File
		want             []atoll.File // sorted
	}{
		{"fromold", "old", "compact", oldFiles[:2], filesOf("n", 3), slices.Concat(oldFiles[2:], filesOf("n", 3))},
		{"fromcompact", "fromold", "compact", oldFiles[2:4], nil, slices.Concat(oldFiles[4:], filesOf("n", 3))},
		{"tobucket", "fromcompact", "bucket", nil, filesOf("z", compactMaxFiles), slices.Concat(oldFiles[4:], filesOf("n", 3), filesOf("z", compactMaxFiles))},
		{"frombig", "big", "compact", bigFiles[100:], nil, bigFiles[:100]},
	}
	for _, r := range rows {
		var remove []string
		for _, f := range r.remove {
			remove = append(remove, f.Path)
		}
		slices.Sort(remove)
		keep := len(r.want) - len(r.add)
		h.must(CreateDeploy{ID: r.id, Site: "blog", Files: len(r.want), Base: r.base, Remove: remove, Created: t0})
		if d := h.deploy(r.id); d.Received != keep {
			t.Errorf("%s: received %d after the create, want %d", r.id, d.Received, keep)
		}
		for _, b := range BatchFiles(r.id, r.add) {
			h.must(b)
		}
		h.must(MarkReady{Deploy: r.id, Bytes: 1})
		if got := h.layouts(r.id)[r.id]; got != r.layout {
			t.Errorf("%s: layout %s, want %s", r.id, got, r.layout)
		}
		h.checkManifest(r.id, r.want)
	}
	h.checkManifest("old", oldFiles)
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	var b []byte
	if _, err := fmt.Sscanf(s, "%x", &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCompactManifestCodec: encoded entries decode back, every path is
// found and every path around them is a miss, and damaged values are an
// error, never a panic.
func TestCompactManifestCodec(t *testing.T) {
	entries := []compactEntry{{"/", 1}, {"/a", 300}, {"/a/b.html", 2}, {"/a/c.html", 1 << 40}, {"/b", 7}}
	v := encodeCompact(entries)
	got, err := decodeCompact(v)
	if err != nil || !slices.Equal(got, entries) {
		t.Fatalf("decode(encode) = %v, %v; want %v", got, err, entries)
	}
	for _, e := range entries {
		if blob, ok, err := findCompact(v, []byte(e.path)); !ok || err != nil || blob != e.blob {
			t.Errorf("find %s = %d, %v, %v; want %d", e.path, blob, ok, err, e.blob)
		}
		if _, ok, err := findCompact(v, []byte(e.path+"x")); ok || err != nil {
			t.Errorf("find %sx = %v, %v; want a miss", e.path, ok, err)
		}
	}
	if _, ok, _ := findCompact(v, []byte("")); ok {
		t.Error("find of the empty path found it")
	}
	for _, bad := range [][]byte{nil, {2}, v[:len(v)-1], {1, 5, 1, 'a', 1}, {1, 0, 200}} {
		if _, err := decodeCompact(bad); !errors.Is(err, errCorruptManifest) {
			t.Errorf("decode %v: %v, want errCorruptManifest", bad, err)
		}
	}
}

// FuzzCompactManifest: any value decodes or fails without a panic, what
// decodes encodes back to entries that decode the same, and in a value of
// sorted, unique paths as encodeCompact writes them findCompact finds each
// and nothing else.
func FuzzCompactManifest(f *testing.F) {
	f.Add(encodeCompact([]compactEntry{{"/a", 1}, {"/ab", 2}}))
	f.Add([]byte{1, 0, 2, '/', 'a', 0x80})
	f.Add(encodeCompact([]compactEntry{{"/", 1}, {"/a", 2}, {"/a/b", 3}, {"/ab", 4}, {"/b", 5}}))
	f.Fuzz(func(t *testing.T, v []byte) {
		entries, err := decodeCompact(v)
		if err != nil {
			return
		}
		again, err := decodeCompact(encodeCompact(entries))
		if err != nil || !slices.Equal(again, entries) {
			t.Fatalf("re-encoded %v: %v, %v", entries, again, err)
		}
		// findCompact needs what encodeCompact writes: sorted, unique
		// paths, each sharing the longest prefix with the one before.
		sorted := bytes.Equal(encodeCompact(entries), v) && slices.IsSortedFunc(entries, func(x, y compactEntry) int { return cmpString(x.path, y.path) }) &&
			len(slices.CompactFunc(slices.Clone(entries), func(x, y compactEntry) bool { return x.path == y.path })) == len(entries)
		for _, e := range entries {
			blob, ok, err := findCompact(v, []byte(e.path))
			if sorted && (!ok || err != nil || blob != e.blob) {
				t.Fatalf("find %q in %v = %d, %v, %v", e.path, entries, blob, ok, err)
			}
			miss := e.path + "\x00"
			if _, ok, _ := findCompact(v, []byte(miss)); sorted && ok && !slices.ContainsFunc(entries, func(x compactEntry) bool { return x.path == miss }) {
				t.Fatalf("find %q in %v found it", miss, entries)
			}
		}
	})
}

// TestReleaseStateTakesCompactManifests: the state release 7054800 wrote
// (bucket manifests, before feature levels) raised to
// LevelCompactManifests holds old and new layouts side by side: a deploy
// based on a release deploy is compact, a new site's too, the release's
// upload in progress keeps its bucket through FailDeploy, and the mixed
// state comes back the same from a snapshot and from its file reopened.
func TestReleaseStateTakesCompactManifests(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(releaseDir, "atoll.snap"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f, err := OpenFSM(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := &fsmHarness{t: t, f: f}
	defer func() { h.f.Close() }()
	if err := f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	checkRelease(t, f)
	h.index = f.AppliedIndex()
	h.must(SetFeatureLevel{Level: atoll.LevelCompactManifests})

	blog := h.site("blog")
	old := h.files(blog.Published)
	added := atoll.File{Path: "/zz-new.html", Hash: hashOf("new page")}
	h.must(CreateDeploy{ID: "next", Site: "blog", Files: len(old), Base: blog.Published, Remove: []string{old[0].Path}, Created: t0},
		AddFiles{Deploy: "next", Files: []atoll.File{added}}, MarkReady{Deploy: "next", Bytes: 1}, Publish{Deploy: "next", At: t0})
	h.must(CreateSite{Name: "fresh", Created: t0})
	h.readyDeploy("fresh", "f1", filesOf("f", 20))
	shop, _ := f.Deploys("shop")
	h.must(FailDeploy{Deploy: shop[0].ID, Reason: "abandoned", DropFiles: true})

	want := map[string]string{blog.Published: "bucket", "next": "compact", "f1": "compact", shop[0].ID: "bucket"}
	if got := h.layouts(blog.Published, "next", "f1", shop[0].ID); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("layouts %v, want %v", got, want)
	}
	h.checkManifest("next", append(slices.Clone(old[1:]), added))
	h.checkManifest(blog.Published, old)
	h.checkManifest("f1", filesOf("f", 20))
	if got := h.files(shop[0].ID); len(got) != 0 {
		t.Errorf("the release's failed upload holds %v, want nothing", got)
	}

	state := dump(t, f)
	restored := newFSM(t)
	if err := restore(restored.f, snapshotOf(t, f)); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, restored.f); got != state {
		t.Errorf("restored mixed state differs:\nwant %s\ngot  %s", state, got)
	}
	f.Close()
	if h.f, err = OpenFSM(dir); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, h.f); got != state {
		t.Errorf("reopened mixed state differs:\nwant %s\ngot  %s", state, got)
	}
	h.must(DeleteSite{Name: "blog"})
	if got := h.blobTable(); len(got) != 7 {
		t.Errorf("after DeleteSite blog: %d blobs interned, want fresh's 7", len(got))
	}
}

// TestFindCompactAgainstMap: in random manifests of paths over a small
// alphabet (so that paths share prefixes of every length and some are
// prefixes of others), findCompact answers every path, and every path of
// the alphabet not in the manifest, as a map does.
func TestFindCompactAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randPath := func() string {
		b := make([]byte, 1+rng.IntN(6))
		for i := range b {
			b[i] = "/ab0."[rng.IntN(5)]
		}
		return string(b)
	}
	for round := range 2000 {
		want := map[string]uint64{}
		for range rng.IntN(40) {
			want[randPath()] = uint64(rng.IntN(1000))
		}
		var entries []compactEntry
		for p, b := range want {
			entries = append(entries, compactEntry{p, b})
		}
		slices.SortFunc(entries, func(x, y compactEntry) int { return cmpString(x.path, y.path) })
		v := encodeCompact(entries)
		for range 60 {
			p := randPath()
			blob, ok, err := findCompact(v, []byte(p))
			if wantBlob, wantOK := want[p]; err != nil || ok != wantOK || blob != wantBlob {
				t.Fatalf("round %d: find %q in %v = %d, %v, %v; want %d, %v", round, p, entries, blob, ok, err, wantBlob, wantOK)
			}
		}
	}
}
