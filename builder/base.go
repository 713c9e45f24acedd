package builder

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/raft"
)

// A redeploy usually changes a few files of thousands. From
// atoll.LevelDeployBase on, a new deploy is recorded from a base, its
// site's live deploy: CreateDeploy names the base and the paths to leave
// out of it, every node copies the base's manifest locally as it applies
// the command, and only the entries that differ travel as AddFiles. The
// manifest recorded is the same as from a full create.
//
// The create's blob check then asks the owners only about the contents the
// base does not have at the same path (and about the old contents of the
// paths left out, whose sizes come off the base's byte count). The base's
// other blobs were checked on a majority of their owners when the base
// became ready or was published, and garbage collection keeps every blob a
// retained deploy names, so they are stored unless a disk lost them since;
// a copy lost that way is what repair restores from the other owners, for
// the base and the new deploy alike, exactly as when it is lost a moment
// after a full check. Publishing checks the whole manifest again except
// right after the create on the same node (confirmed.go).

// maxRemoveBytes bounds the encoded paths a based create leaves out of its
// base, so that the command stays far below raft.MaxCommandBytes; a deploy
// that removes more is recorded with its whole manifest.
const maxRemoveBytes = raft.MaxBatchBytes

// maxBaseFiles bounds the base a create copies: every node copies the
// base's manifest in one apply, during which it applies nothing else, so a
// larger deploy is recorded with its whole manifest in AddFiles batches
// (which let other commands in between). A copy of 250,000 entries took
// 1.4 s on a loaded 2-core machine; 100,000 keep the pause well under a
// second.
const maxBaseFiles = 100_000

// deployBase is a new manifest's difference from its base deploy's.
type deployBase struct {
	id     string
	bytes  int64        // the base's total bytes (atoll.Deploy.Bytes)
	kept   int          // base entries kept as they are
	remove []atoll.File // base entries left out, with their old hashes, by path
	add    []atoll.File // new entries not in the base as they are, by path
}

// planBase returns files' difference from the live deploy of site, or nil
// when the deploy is to be recorded whole: below atoll.LevelDeployBase,
// without a live deploy (or one this node does not hold whole yet, or one
// above maxBaseFiles entries), when nothing would be kept, or when the
// paths to leave out are too many for one command. files must be sorted by path.
func (a *API) planBase(site string, files []atoll.File) *deployBase {
	if a.meta.FeatureLevel() < atoll.LevelDeployBase {
		return nil
	}
	s, err := a.meta.Site(site)
	if err != nil || s.Published == "" {
		return nil
	}
	live, err := a.meta.Deploy(s.Published)
	if err != nil || live.State != atoll.StatePublished || live.Received != live.Files || live.Files > maxBaseFiles {
		return nil
	}
	b := &deployBase{id: live.ID, bytes: live.Bytes}
	removeBytes, i := 0, 0
	err = a.meta.Files(live.ID, func(f atoll.File) error {
		for i < len(files) && files[i].Path < f.Path {
			b.add = append(b.add, files[i])
			i++
		}
		if i < len(files) && files[i].Path == f.Path {
			i++
			if files[i-1].Hash == f.Hash {
				b.kept++
				return nil
			}
			b.add = append(b.add, files[i-1])
		}
		b.remove = append(b.remove, f)
		enc, err := json.Marshal(f.Path) // as the command will carry it
		if removeBytes += len(enc) + 1; err != nil || removeBytes > maxRemoveBytes {
			return errTooDifferent
		}
		return nil
	})
	if err != nil || b.kept == 0 {
		return nil // errTooDifferent, or the base went meanwhile: record the whole manifest
	}
	b.add = append(b.add, files[i:]...)
	return b
}

var errTooDifferent = errors.New("too many paths to remove from the base")

// removePaths is the command's list of the base's paths to leave out.
func (b *deployBase) removePaths() []string {
	out := make([]string, len(b.remove))
	for i, f := range b.remove {
		out[i] = f.Path
	}
	return out
}

// checkBlobs checks the blobs of a new manifest (files, with hashes its
// distinct hashes, sorted) for a create: the blobs not stored, and the
// total bytes of the files whose blobs are. With a base it asks only
// about the blobs of the entries that differ from the base (see the top
// of this file), and asks about the whole manifest only when the size of
// a content left out of the base cannot be found.
func (a *API) checkBlobs(ctx context.Context, files []atoll.File, hashes []string, base *deployBase) blobCheck {
	if base != nil {
		if c, ok := a.checkBasedBlobs(ctx, base); ok {
			return c
		}
	}
	missing, sizes, err := a.statAll(ctx, hashes)
	c := blobCheck{missing: missing, err: err}
	for _, f := range files {
		c.bytes += sizes[f.Hash]
	}
	return c
}

// checkBasedBlobs is checkBlobs from a base; false when a content left out
// of the base is not stored, so its size is unknown.
func (a *API) checkBasedBlobs(ctx context.Context, base *deployBase) (blobCheck, bool) {
	added := distinctHashes(base.add)
	ask := slices.Concat(added, distinctHashes(base.remove))
	slices.Sort(ask)
	missing, sizes, err := a.statAll(ctx, slices.Compact(ask))
	if err != nil {
		return blobCheck{err: err}, true
	}
	c := blobCheck{bytes: base.bytes}
	for _, f := range base.remove {
		n, ok := sizes[f.Hash]
		if !ok {
			return blobCheck{}, false
		}
		c.bytes -= n
	}
	for _, f := range base.add {
		c.bytes += sizes[f.Hash]
	}
	for _, h := range missing {
		if _, found := slices.BinarySearch(added, h); found {
			c.missing = append(c.missing, h)
		}
	}
	return c, true
}

// distinctHashes returns the distinct hashes of files, sorted.
func distinctHashes(files []atoll.File) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.Hash
	}
	slices.Sort(out)
	return slices.Compact(out)
}
