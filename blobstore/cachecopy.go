package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atoll-hosting/atoll/internal/durable"
)

// Cache copies: blobs an edge (or any node) keeps only because it serves
// them, while their owners hold the durable copies. Fsyncing such a copy
// before answering would cost ~6 fsyncs on the visitor's first request
// (I2), for a copy whose loss only means fetching it again. ImportCache
// stores one with the checks of Import but no fsync on the way; a
// background syncer makes it durable moments later, and a marker file lets
// New find and re-verify, after a crash, every copy that may not have been.
// The invariant and its argument: DESIGN.md, I11.

// unsyncedMarker, in the store folder, exists (durably) before any cache
// copy is renamed into place without fsync. It holds a time T in Unix
// nanoseconds: every identity file renamed into place without fsync and not
// yet synced has an mtime >= T.
const unsyncedMarker = "unsynced"

// unsyncedSlack is subtracted from the marker's time at recovery, against
// the granularity of file times.
const unsyncedSlack = 2 * time.Second

// syncDelay batches the background syncer's work: it waits this long after
// the first unsynced copy before fsyncing all that arrived meanwhile.
const syncDelay = 20 * time.Millisecond

// unsyncedCopies tracks the cache copies renamed into place and not yet
// fsynced. The zero value is ready.
type unsyncedCopies struct {
	mu       sync.Mutex
	marker   bool     // the marker file exists durably
	inflight int      // publishes between begin and done
	files    []string // renamed without fsync, not yet synced
	dirs     map[string]bool
	syncing  bool // a syncer goroutine is running
	closed   bool // Store.Close: no new syncer starts
	loops    sync.WaitGroup
	// markerAt is the time in the marker (Unix ns), 0 if none written.
	markerAt atomic.Int64
}

// markerMaxAge: while durable writes go on, the marker is advanced at
// least this often, so that recovery re-reads at most this much of them
// (their mtimes are after the marker's time too).
const markerMaxAge = 10 * time.Second

// durablePublished is called after a durable publish (Put, Import): if a
// marker exists and is older than markerMaxAge, a syncer round advances it.
func (u *unsyncedCopies) durablePublished(s *Store) {
	at := u.markerAt.Load()
	if at == 0 || time.Since(time.Unix(0, at)) < markerMaxAge {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.startSyncer(s)
}

// startSyncer starts the syncer goroutine unless it runs or the store is
// closed; u.mu is held.
func (u *unsyncedCopies) startSyncer(s *Store) {
	if u.syncing || u.closed {
		return
	}
	u.syncing = true
	u.loops.Go(func() { u.syncLoop(s) })
}

// close waits for the syncer to finish its round (the copies renamed so
// far are then durable) and starts no other: copies published after it
// are left to the crash recovery of the next New (I11).
func (u *unsyncedCopies) close() {
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	u.loops.Wait()
}

// ImportCache stores a blob received from another node, like Import, as a
// cache copy: the identity bytes are hashed and the variants checked
// exactly as Import does, so nothing unverified becomes visible, but no
// fsync precedes the return. The copy is durable a few milliseconds later
// (background syncer); a crash before that leaves it missing or, if the
// file system kept the rename but not the data, re-verified and removed by
// the next New. Use it only for copies whose owners hold them durably.
func (s *Store) ImportCache(ctx context.Context, hash, header string, body io.Reader) (Info, error) {
	return s.importBlob(ctx, hash, header, body, false)
}

// begin is called by a non-durable publish before its first rename: it
// makes sure the marker exists durably and counts the publish in flight.
func (u *unsyncedCopies) begin(s *Store) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.marker {
		if err := s.writeMarker(time.Now()); err != nil {
			return fmt.Errorf("write %s marker: %w", unsyncedMarker, err)
		}
		u.marker = true
	}
	u.inflight++
	return nil
}

// done ends a publish counted by begin; files are the paths it renamed into
// dir (none if it failed), which the background syncer fsyncs.
func (u *unsyncedCopies) done(s *Store, dir string, files []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.inflight--
	if len(files) == 0 {
		return
	}
	u.files = append(u.files, files...)
	if u.dirs == nil {
		u.dirs = make(map[string]bool)
	}
	u.dirs[dir] = true
	u.startSyncer(s)
}

// syncLoop fsyncs the unsynced copies in batches until none is left, then
// advances the marker's time and exits.
func (u *unsyncedCopies) syncLoop(s *Store) {
	for {
		time.Sleep(syncDelay)
		u.mu.Lock()
		files, dirs := u.files, u.dirs
		u.files, u.dirs = nil, nil
		// Publishes that begin after this point set their identity's
		// mtime after it; those in flight now will be in a later batch.
		snap, quiet := time.Now(), u.inflight == 0
		u.mu.Unlock()

		ok := true
		for _, p := range files {
			if err := syncFile(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.log.Warn("sync cache copy", "path", p, "err", err)
				ok = false
			}
		}
		for d := range dirs {
			if err := durable.SyncDir(d); err != nil {
				s.log.Warn("sync cache folder", "dir", d, "err", err)
				ok = false
			}
		}

		if ok && quiet {
			// Every copy renamed before snap is durable now, and every
			// one that begins after it gets a later mtime: recovery need
			// only look at those. Only this goroutine writes the marker
			// while syncing is set, so no lock is held meanwhile.
			if err := s.writeMarker(snap); err != nil {
				s.log.Warn("advance unsynced marker", "err", err)
			}
		}
		u.mu.Lock()
		if len(u.files) > 0 {
			u.mu.Unlock()
			continue
		}
		u.syncing = false
		u.mu.Unlock()
		return
	}
}

// markCopyTime sets the identity temp file's mtime to now, after begin: the
// marker's time (taken before, under the lock) is then a lower bound of
// the mtime of every unsynced identity file (I11).
func markCopyTime(path string) error {
	now := time.Now()
	return os.Chtimes(path, now, now)
}

// writeMarker durably replaces the marker with one holding t.
func (s *Store) writeMarker(t time.Time) error {
	data := []byte(strconv.FormatInt(t.UnixNano(), 10) + "\n")
	if err := durable.WriteFileVia(s.tmp, "marker-*", filepath.Join(s.dir, unsyncedMarker), data, 0o644); err != nil {
		return err
	}
	s.unsynced.markerAt.Store(t.UnixNano())
	return nil
}

// recoverUnsynced runs in New. If the marker exists, some cache copies may
// have been renamed into place without their data reaching the disk: every
// blob whose identity mtime is at or after the marker's time (less
// unsyncedSlack) is verified, a corrupt one deleted, the others fsynced;
// then the marker is advanced to now.
func (s *Store) recoverUnsynced() error {
	data, err := os.ReadFile(filepath.Join(s.dir, unsyncedMarker))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	start := time.Now()
	since := int64(0) // unreadable marker: check everything
	if t, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); err == nil {
		since = t - int64(unsyncedSlack)
	}
	checked, removed := 0, 0
	for _, shard := range s.shards() {
		dir := filepath.Join(s.dir, shard)
		names, err := readNames(dir)
		if err != nil {
			return err
		}
		synced := false
		for _, name := range names {
			if !validHash(name) {
				continue
			}
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil || fi.ModTime().UnixNano() < since {
				continue
			}
			checked++
			if verr := s.Verify(name); verr != nil {
				s.log.Warn("removing a cache copy that did not survive a crash", "blob", name, "err", verr)
				if err := s.deleteLocked(name, true); err != nil {
					return err
				}
				removed++
				synced = true
				continue
			}
			base := filepath.Join(dir, name)
			for _, p := range append([]string{base}, variantPaths(base)...) {
				if err := syncFile(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			synced = true
		}
		if synced {
			if err := durable.SyncDir(dir); err != nil {
				return err
			}
		}
	}
	s.log.Info("checked cache copies written since the last sync", "checked", checked, "removed", removed, "took", time.Since(start))
	s.unsynced.marker = true
	return s.writeMarker(start)
}

func variantPaths(base string) []string {
	out := make([]string, 0, len(encodings))
	for _, e := range encodings {
		out = append(out, base+e.ext)
	}
	return out
}

// syncFile fsyncs the file at path.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
