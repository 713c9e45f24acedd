package blobstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/atoll-hosting/atoll/internal/durable"
)

// QuarantineFolder is the folder, under Config.Dir, that holds the blobs
// Quarantine took out of service.
const QuarantineFolder = "quarantine"

// Quarantine takes a stored blob out of service, for a copy found corrupt:
// its identity file, then its variants, are renamed into a new folder
// <dir>/quarantine/<hash>.<UTC time>-<random>/, whose path it returns. The
// blob stops existing for the store (Stat, Has, Open, Export, Walk, Verify,
// Usage) the moment its identity file is moved (DESIGN.md I1, Q1): a reader
// that opened a file before keeps reading it, nobody can open it after. A
// later Put or Import of the hash stores a fresh copy as usual.
//
// The quarantined files are kept for an operator to look at (which bytes
// changed, on which disk); nothing in the store reads, counts or removes
// them. It returns an error wrapping ErrNotFound when the blob is not
// stored, and fsyncs the folders involved before returning, so a blob
// quarantined before a crash does not come back after it.
func (s *Store) Quarantine(hash string) (string, error) {
	if !validHash(hash) {
		return "", fmt.Errorf("quarantine blob %q: %w", hash, ErrInvalidHash)
	}
	unlock := s.locks.lock(hash)
	defer unlock()
	base := s.path(hash)
	if _, err := os.Lstat(base); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("quarantine blob %s: %w", hash, ErrNotFound)
		}
		return "", fmt.Errorf("quarantine blob %s: %w", hash, err)
	}
	root := filepath.Join(s.dir, QuarantineFolder)
	if err := os.Mkdir(root, 0o755); err == nil {
		if err := durable.SyncDir(s.dir); err != nil {
			return "", fmt.Errorf("quarantine blob %s: %w", hash, err)
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("quarantine blob %s: %w", hash, err)
	}
	dst, err := os.MkdirTemp(root, hash+"."+time.Now().UTC().Format("20060102T150405Z")+"-")
	if err != nil {
		return "", fmt.Errorf("quarantine blob %s: %w", hash, err)
	}
	// The identity file first: from here on the blob does not exist.
	s.orphans.mark(hash) // until every variant has followed it
	if err := os.Rename(base, filepath.Join(dst, hash)); err != nil {
		os.Remove(dst)
		return "", fmt.Errorf("quarantine blob %s: %w", hash, err)
	}
	s.cache.remove(hash)
	s.acct.removed(hash)
	left := false
	for _, e := range encodings {
		err := os.Rename(base+e.ext, filepath.Join(dst, hash+e.ext))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			left = true
			// Invisible already (no identity file): New, or the next
			// Put of this hash, removes it.
			s.log.Warn("quarantine: variant left in place", "blob", hash, "encoding", e.name, "err", err)
		}
	}
	if !left {
		s.orphans.clear(hash)
	}
	s.clearPending(hash) // nothing left to compress
	for _, d := range []string{filepath.Dir(base), dst, root} {
		if err := durable.SyncDir(d); err != nil {
			return dst, fmt.Errorf("quarantine blob %s: %w", hash, err)
		}
	}
	return dst, nil
}
