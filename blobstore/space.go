package blobstore

import (
	"errors"
	"fmt"
)

// Disk space.
//
// A full disk must cost a node its new writes, never what it already
// serves, and never a half-written blob. Two guards:
//
//   - The reserve: Put and Import refuse to start (ErrNoSpace) while the
//     free space of the store's file system is below Config.MinFreeBytes,
//     and check again once the body is in its temp file, before anything is
//     made durable. A node's Raft log and state usually share the disk, and
//     the metadata of a deploy must still fit after its blobs: the reserve
//     keeps that room. The check is a statfs(2) per write (twice per
//     PutBatch: before reading it, and once all its bodies are spooled),
//     so concurrent writes can each pass it and undercut the reserve by
//     what they hold in flight; the reserve is a margin, not a quota.
//   - ENOSPC: whatever the reserve, the disk can still fill (other
//     programs, a reserve of 0). Put and Import wrap a write that failed
//     with ENOSPC or EDQUOT in ErrNoSpace, and, as for every failure,
//     remove their temp files (DESIGN.md I2, I8), so nothing half-written
//     stays behind and a retry once space returns starts clean.
//
// Reads (Stat, Open, Export, Verify) never need space and are never
// refused.

// spaceGuard holds the reserve and how free space is measured.
type spaceGuard struct {
	minFree int64
	// free returns the bytes unprivileged writers may still use on the file
	// system of dir, or an error when it cannot tell. Tests replace it.
	free func(dir string) (int64, error)
}

func newSpaceGuard(minFree int64) spaceGuard {
	return spaceGuard{minFree: minFree, free: freeBytes}
}

// FreeBytes returns the bytes still available to the store on its file
// system (statfs's f_bavail), and an error on a platform or file system
// that cannot tell.
func (s *Store) FreeBytes() (int64, error) {
	return s.space.free(s.dir)
}

// Dir returns the store's folder (Config.Dir).
func (s *Store) Dir() string { return s.dir }

// checkSpace returns an error wrapping ErrNoSpace when the free space is
// below the reserve. When free space cannot be measured it returns nil: the
// write then finds out from the file system itself.
func (s *Store) checkSpace() error {
	return s.RoomFor(s.dir, 0)
}

// RoomFor returns an error wrapping ErrNoSpace when writing need more bytes
// under dir (a folder on any file system: the node's upload spool uses it
// too) would leave less than the reserve, Config.MinFreeBytes, free there.
// With a reserve of 0 only a disk that is full already is refused. When
// free space cannot be measured it returns nil: the write then finds out
// from the file system itself.
func (s *Store) RoomFor(dir string, need int64) error {
	if s.space.minFree <= 0 && need <= 0 {
		return nil
	}
	free, err := s.space.free(dir)
	if err != nil || free-need >= s.space.minFree {
		return nil
	}
	if need > 0 {
		return fmt.Errorf("%w: %s more would leave %s free on the disk of %s, below the %s kept free for the node's metadata",
			ErrNoSpace, formatBytes(need), formatBytes(max(free-need, 0)), dir, formatBytes(s.space.minFree))
	}
	return fmt.Errorf("%w: %s free on the disk of %s, below the %s kept free for the node's metadata",
		ErrNoSpace, formatBytes(free), dir, formatBytes(s.space.minFree))
}

// noSpace wraps err in ErrNoSpace when the file system reported that it is
// full, so callers can tell a full disk from other failures.
func noSpace(err error) error {
	if err == nil || errors.Is(err, ErrNoSpace) || !isNoSpaceErrno(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrNoSpace, err)
}

// formatBytes renders n in binary units for messages: "512 B", "3.2 MiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
