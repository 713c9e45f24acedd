package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/atoll-hosting/atoll/internal/ctxio"
	"github.com/atoll-hosting/atoll/internal/durable"
	"github.com/atoll-hosting/atoll/internal/osfile"
)

// Put stores the bytes read from r until EOF and returns the blob's Info.
//
// want is the hash the caller expects, or "" to accept any content. An
// invalid want fails with ErrInvalidHash before r is read; bytes that hash to
// something else fail with an error wrapping ErrHashMismatch that names both
// hashes, and nothing is kept.
//
// The body is streamed to a temp file while it is hashed. If the blob is
// already stored, Put returns its Info and changes nothing (Put is
// idempotent). Otherwise it makes the blob visible with the durability order
// of DESIGN.md: when Put returns nil, the identity bytes are fsynced and
// survive a crash. The compressed variants worth keeping are made in the
// background (see background.go): the returned Info has none yet, and a
// crash before they are made leaves the blob queued for them at the next
// New.
// Concurrent Puts of the same content are safe: one stores it, the others
// return its Info.
//
// Put reads r to EOF unless ctx is done or reading fails; limiting the size
// of r is the caller's business.
//
// A full disk fails Put with an error wrapping ErrNoSpace, before r is read
// when the free space is already below Config.MinFreeBytes (unless want is
// stored), and nothing is kept (see space.go).
func (s *Store) Put(ctx context.Context, want string, r io.Reader) (_ Info, err error) {
	if want != "" && !validHash(want) {
		return Info{}, fmt.Errorf("put blob %q: %w", want, ErrInvalidHash)
	}
	defer func() { err = noSpace(err) }()
	if want == "" || !s.Has(want) {
		if err := s.checkSpace(); err != nil {
			return Info{}, fmt.Errorf("put blob: %w", err)
		}
	}
	tmp, err := osfile.CreateTemp(s.tmp, "put-")
	if err != nil {
		return Info{}, fmt.Errorf("put blob: %w", err)
	}
	defer func() {
		// Still set unless the identity file was renamed into place.
		if tmp != nil {
			tmp.Close()
			s.removeBestEffort(tmp.Name())
		}
	}()

	h := sha256.New()
	var head headKeeper
	size, err := io.CopyBuffer(io.MultiWriter(tmp, h, &head), ctxio.NewReader(ctx, r), make([]byte, 128<<10))
	if err != nil {
		return Info{}, fmt.Errorf("put blob: read body: %w", err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want != "" && got != want {
		return Info{}, fmt.Errorf("put blob: got %s, want %s: %w", got, want, ErrHashMismatch)
	}

	unlock := s.locks.lock(got)
	defer unlock()
	// Under the lock: a concurrent Put of the same content that got here
	// first has published and fsynced it. Else the space check runs again,
	// now that the body takes its room: the reserve must hold after this
	// blob too.
	if info, stored, err := s.storedOrRoom(got); err != nil || stored {
		return info, wrapErr("put blob "+got, err)
	}
	// Only the identity bytes are made durable before the answer; the
	// variants are made in the background (background.go), and the
	// pending marker, durable with the identity, says they are due.
	pending, err := mayCompress(&head, size)
	if err != nil {
		return Info{}, fmt.Errorf("put blob %s: %w", got, err)
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("put blob %s: sync: %w", got, err)
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("put blob %s: %w", got, err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("put blob %s: %w", got, err)
	}
	info, err := s.commit(got, size, tmp.Name(), nil, pending, true)
	if err != nil {
		return Info{}, fmt.Errorf("put blob %s: %w", got, err)
	}
	tmp = nil
	return info, nil
}

// commit makes a blob whose temp files are complete (and fsynced when
// synced) visible, under hash's lock, which the caller holds: the pending
// marker first when its variants are still to be made (I2 step 4), then
// publish, then the Stat cache and the compression queue. On error
// nothing of the blob is visible and the temp files are the caller's.
func (s *Store) commit(hash string, size int64, identityTmp string, variants []variantFile, pending, synced bool) (Info, error) {
	if pending {
		if err := s.ensureShard(hash); err != nil {
			return Info{}, err
		}
		if err := s.markPending(hash); err != nil {
			return Info{}, err
		}
	}
	info, err := s.publish(hash, size, identityTmp, variants, synced)
	if err != nil {
		if pending {
			s.clearPending(hash)
		}
		return Info{}, err
	}
	info.Pending = pending && len(info.Variants) == 0
	s.cache.add(info)
	if pending {
		s.enqueue(hash)
	}
	return info, nil
}

// publish moves a blob's complete temp files into place: variants first
// (publishVariants, which also removes variant files of this hash that are
// not in variants, crash leftovers, so a blob never shows a variant not made
// for it), then a directory fsync, then the identity file, then a directory
// fsync. On error, nothing is visible and publish removes what it renamed
// (best effort: what remains is invisible garbage that New or the next Put
// removes). Renamed entries of variants get path "".
//
// With synced false (a cache copy, cachecopy.go) publish skips the folder
// fsyncs and hands the renamed files to the background syncer instead,
// under the unsynced marker (DESIGN.md, I11).
func (s *Store) publish(hash string, size int64, identityTmp string, variants []variantFile, synced bool) (_ Info, err error) {
	if err := s.ensureShard(hash); err != nil {
		return Info{}, err
	}
	base := s.path(hash)
	dir := filepath.Dir(base)
	info := Info{Hash: hash, Size: size}
	var renamed []string // files renamed into place, for the syncer or undo
	if !synced {
		if err := s.unsynced.begin(s); err != nil {
			return Info{}, err
		}
		defer func() {
			if err == nil {
				s.unsynced.done(s, dir, renamed)
			} else {
				s.unsynced.done(s, dir, nil)
			}
		}()
		if err := markCopyTime(identityTmp); err != nil {
			return Info{}, err
		}
	}
	undo := func() {
		s.orphans.mark(hash) // a variant may outlive a failed removal
		for _, p := range renamed {
			s.removeBestEffort(p)
		}
	}

	for _, v := range variants {
		info.Variants = append(info.Variants, Variant{Encoding: v.encoding, Size: v.size})
	}
	// The variants must be durable before the identity file that vouches
	// for them can be.
	renamed, err = s.newBlobVariants(hash, variants, synced)
	if err != nil {
		undo()
		return Info{}, err
	}

	if err := os.Rename(identityTmp, base); err != nil {
		undo()
		return Info{}, fmt.Errorf("publish: %w", err)
	}
	if !synced {
		renamed = append(renamed, base)
		s.acct.added(info)
		return info, nil
	}
	if err := durable.SyncDir(dir); err != nil {
		// Not known to be durable: take it back so that a retry
		// stores it again rather than trusting it.
		renamed = append(renamed, base)
		slices.Reverse(renamed) // identity first
		undo()
		s.cache.remove(hash) // a reader may have cached it meanwhile
		return Info{}, err
	}
	s.acct.added(info)
	s.unsynced.durablePublished(s) // keeps the cache copies' marker recent (I11)
	return info, nil
}

// newBlobVariants is publishVariants for a blob whose identity is not in
// place yet: stale variant files of hash are looked for only where the
// orphan ledger says some may be (I18), and the ledger is cleared of hash
// once they are gone. It returns the paths renamed, also on error.
func (s *Store) newBlobVariants(hash string, variants []variantFile, sync bool) ([]string, error) {
	stale := s.orphans.has(hash)
	renamed, _, err := publishVariants(s.path(hash), variants, sync, stale)
	if err == nil && stale {
		s.orphans.clear(hash)
	}
	return renamed, err
}

// publishVariants makes variants the variant files of the blob whose
// identity path is base: it renames each complete temp file into place
// (setting its path to ""), then, when stale is set, removes the variant
// files of the other encodings (leftovers of an earlier copy, or an
// earlier pass with another outcome), and, when sync is set and the shard
// folder changed, fsyncs the folder. It returns the paths renamed, also on
// error, so that a caller may take them back, and whether the folder
// changed (false on error).
func publishVariants(base string, variants []variantFile, sync, stale bool) (renamed []string, changed bool, err error) {
	kept := make(map[string]bool, len(variants))
	for i := range variants {
		v := &variants[i]
		ext, _ := extFor(v.encoding)
		if err := os.Rename(v.path, base+ext); err != nil {
			return renamed, false, fmt.Errorf("publish variant %s: %w", v.encoding, err)
		}
		v.path = ""
		renamed = append(renamed, base+ext)
		kept[v.encoding] = true
	}
	changed = len(renamed) > 0
	for _, e := range encodings {
		if kept[e.name] || !stale {
			continue
		}
		err := removeFile(base + e.ext)
		switch {
		case err == nil:
			changed = true
		case !errors.Is(err, fs.ErrNotExist):
			return renamed, false, fmt.Errorf("remove stale variant %s: %w", e.name, err)
		}
	}
	if changed && sync {
		if err := durable.SyncDir(filepath.Dir(base)); err != nil {
			return renamed, false, err
		}
	}
	return renamed, changed, nil
}

// removeFile removes the file at path: os.Remove without its second try
// as a folder (rmdir) when the unlink fails, so checking for a file that
// is not there, as publish does for every variant of every new blob, is
// one system call.
func removeFile(path string) error {
	if err := syscall.Unlink(path); err != nil {
		return &fs.PathError{Op: "remove", Path: path, Err: err}
	}
	return nil
}

// removeTemps removes the temp files of variants not renamed into place
// (path not "").
func (s *Store) removeTemps(variants []variantFile) {
	for _, v := range variants {
		if v.path != "" {
			s.removeBestEffort(v.path)
		}
	}
}

// removeBestEffort removes a file whose removal only tidies up; a failure
// is logged, never returned.
func (s *Store) removeBestEffort(path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("remove file", "path", path, "err", err)
	}
}

// storedOrRoom runs under hash's lock before a blob is published: it
// returns the stored Info when the blob already exists (a concurrent Put
// or Import won), else checks that the space reserve still holds.
func (s *Store) storedOrRoom(hash string) (info Info, stored bool, err error) {
	if info, stored, err = s.stored(hash); err != nil || stored {
		return info, stored, err
	}
	return Info{}, false, s.checkSpace()
}

// stored runs under hash's lock before a blob is published: it returns
// the stored Info when the blob already exists (a concurrent Put or
// Import won), counted as an access.
func (s *Store) stored(hash string) (info Info, stored bool, err error) {
	if info, err := s.Stat(hash); err == nil {
		s.acct.touch(hash)
		return info, true, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Info{}, false, err
	}
	return Info{}, false, nil
}

// wrapErr prefixes err with what was being done; nil stays nil.
func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
