package raft

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
	"github.com/klauspost/compress/zstd"
	bolt "go.etcd.io/bbolt"

	"github.com/atoll-hosting/atoll/internal/durable"
)

// A snapshot is a fixed header followed by the zstd-compressed bytes of a
// consistent copy of the FSM's bbolt file (Tx.WriteTo):
//
//	magic "ATOLLFSM" | version byte | BE uint64 index | BE uint64 term | zstd(bbolt file)
//
// index and term are those of the last entry applied to the copied state,
// read in the same transaction as the copy: the header says exactly what the
// state contains. Store.Open reads just the header to decide whether the FSM
// on disk is behind the newest snapshot.
const (
	snapshotMagic   = "ATOLLFSM"
	snapshotVersion = 1
	snapshotHeader  = len(snapshotMagic) + 1 + 16
)

// restoreSuffix names the temporary file a restore writes next to fsm.db.
const restoreSuffix = ".restore"

func encodeSnapshotHeader(it indexTerm) []byte {
	h := make([]byte, 0, snapshotHeader)
	h = append(h, snapshotMagic...)
	h = append(h, snapshotVersion)
	h = binary.BigEndian.AppendUint64(h, it.index)
	return binary.BigEndian.AppendUint64(h, it.term)
}

func decodeSnapshotHeader(h []byte) (indexTerm, error) {
	if len(h) < snapshotHeader || string(h[:len(snapshotMagic)]) != snapshotMagic {
		return indexTerm{}, errors.New("not an atoll FSM snapshot")
	}
	switch v := h[len(snapshotMagic)]; {
	case v > snapshotVersion:
		return indexTerm{}, &NewerStateError{What: "the snapshot", Version: int(v)}
	case v != snapshotVersion:
		return indexTerm{}, fmt.Errorf("snapshot format version %d, want %d", v, snapshotVersion)
	}
	p := h[len(snapshotMagic)+1:]
	return indexTerm{binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:])}, nil
}

// peekSnapshotIndex returns the applied index and term recorded in the
// header of snapshot r, and a reader that still yields the whole snapshot.
func peekSnapshotIndex(r io.Reader) (indexTerm, *bufio.Reader, error) {
	br := bufio.NewReader(r)
	h, err := br.Peek(snapshotHeader)
	if err != nil {
		return indexTerm{}, nil, fmt.Errorf("read snapshot header: %w", err)
	}
	it, err := decodeSnapshotHeader(h)
	return it, br, err
}

// Snapshot returns a snapshot of the current state. It only begins a bbolt
// read transaction, so it returns at once; Persist copies the data while
// applies go on. Raft calls Release when done with it.
func (f *FSM) Snapshot() (hraft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return nil, ErrClosed
	}
	if err := f.StorageFailed(); err != nil {
		// raft would label the state with its own applied index, past the
		// entries the state lacks, and compact them out of the log.
		return nil, err
	}
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("begin snapshot: %w", err)
	}
	f.logBytes.Store(0) // what the log holds past this snapshot starts again
	return &fsmSnapshot{tx: tx, applied: getApplied(tx)}, nil
}

type fsmSnapshot struct {
	tx      *bolt.Tx
	applied indexTerm
	release sync.Once
}

// Persist streams the header and the compressed state into sink.
func (s *fsmSnapshot) Persist(sink hraft.SnapshotSink) error {
	if err := s.writeTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot at index %d: %w", s.applied.index, err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) writeTo(w io.Writer) error {
	if _, err := w.Write(encodeSnapshotHeader(s.applied)); err != nil {
		return err
	}
	// One encoder goroutine: snapshots run in the background and should not
	// take cores from serving.
	enc, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	if _, err := s.tx.WriteTo(enc); err != nil {
		enc.Close()
		return err
	}
	return enc.Close()
}

// Release ends the read transaction.
func (s *fsmSnapshot) Release() {
	s.release.Do(func() {
		_ = s.tx.Rollback()
	})
}

// Restore replaces the whole state with a snapshot made by Persist. It
// decompresses into a new file next to fsm.db, fsyncs it and checks it, and
// only then swaps it in: rename over the current file, fsync the directory,
// open it, close the old one once its last snapshot is released. A failure
// before the rename leaves the old state in place, untouched; there is
// never a half-restored state. Readers wait only for the swap itself (they
// hold the read side of the FSM's lock), not for the decompression nor for
// snapshots still being persisted.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	it, r, err := peekSnapshotIndex(rc)
	if err != nil {
		return err
	}
	if _, err := r.Discard(snapshotHeader); err != nil {
		return err
	}
	tmp := f.path + restoreSuffix
	counts, err := writeRestoreFile(tmp, r, it)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore snapshot at index %d: %w", it.index, err)
	}

	// The swap, under the lock: readers hold its read side for each
	// transaction, so they see the old state or the new one. The old file
	// is renamed over while still open: it stays readable through its
	// descriptor, so a snapshot still being persisted from it completes,
	// and it is closed once that snapshot is released (bbolt's Close waits
	// for open read transactions). Restore must not wait for that release
	// itself: hashicorp/raft persists snapshots in another goroutine which,
	// before releasing one, asks raft's main loop for the configuration,
	// while the main loop waits for this Restore (InstallSnapshot). That
	// wait once left a restarted follower stuck for good.
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := os.Rename(tmp, f.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	serr := durable.SyncDir(f.dir)
	db, err := openBolt(f.path)
	if err != nil {
		// The restored file is in place for the next start; until then
		// the old state keeps answering.
		return fmt.Errorf("restore: reopen: %w", err)
	}
	if old := f.db; old != nil {
		go old.Close()
	}
	f.db = db
	f.applied.Store(it.index)
	f.restored.Store(it.index)
	f.setCounts(counts)
	f.published.reset() // the publishes in between are not in the feed
	f.failed.Store(nil) // a whole state again: raft applies on from its index
	f.notifyChanged()
	if serr != nil {
		return fmt.Errorf("restore: sync %s: %w", f.dir, serr)
	}
	return nil
}

// writeRestoreFile decompresses a snapshot body into path, fsyncs it,
// checks that it opens as an FSM file whose applied index is the header's,
// and counts it (countState).
func writeRestoreFile(path string, r io.Reader, want indexTerm) (*stateCounts, error) {
	os.Remove(path) // a leftover of an interrupted restore
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
	if err != nil {
		file.Close()
		return nil, err
	}
	_, err = io.Copy(file, dec)
	dec.Close()
	if err == nil {
		err = file.Sync()
	}
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open restored state: %w", err)
	}
	defer db.Close()
	var counts *stateCounts
	err = db.View(func(tx *bolt.Tx) error {
		if err := checkRestorable(tx, want); err != nil {
			return err
		}
		counts, err = countState(tx)
		return err
	})
	return counts, err
}
