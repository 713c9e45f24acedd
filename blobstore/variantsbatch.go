package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/atoll-hosting/atoll/internal/ctxio"
)

// VariantsNext yields the records of a batch of variants one at a time:
// the blob's name, its transfer header and the variants' bytes, as
// ExportVariants gives them (body read to EOF before the next call), then
// io.EOF.
type VariantsNext func() (hash, header string, body io.Reader, err error)

// VariantsResult is what AcceptVariantsBatch did with one record: Err is
// nil when the blob has its variants now (these, or ones it had), else it
// wraps ErrNotFound (the blob is not stored here), ErrHashMismatch (a
// variant does not decompress to the blob's bytes: the blob is queued for
// compression here), ErrMalformed or ErrInvalidHash (the record is not
// one: the blob keeps waiting).
type VariantsResult struct {
	Hash string
	Info Info // when Err is nil
	Err  error
}

// AcceptVariantsBatch stores the variants another node made of many blobs
// this store holds pending, as AcceptVariants does for one, but with the
// durability points of a PutBatch (DESIGN.md, I17): every record is
// received and checked (each variant decompressed against the blob's
// name, I9), the kept variants are made durable together, renamed into
// place under the locks of all the batch's blobs, the renames made
// durable together, and only then are the markers removed. It returns one
// result per record, in order.
//
// A record that fails its own checks (see VariantsResult) does not stop
// the others. A read error, a record that is cut short, or a failure of
// the disk fails the whole call: nothing new is installed (variants
// renamed before a failed sync stay, verified, but their blobs stay
// pending and are compressed again here), and every blob of the batch
// keeps waiting as it was.
func (s *Store) AcceptVariantsBatch(ctx context.Context, next VariantsNext) (_ []VariantsResult, err error) {
	defer func() { err = noSpace(err) }()
	if err := s.checkSpace(); err != nil {
		return nil, fmt.Errorf("accept variants batch: %w", err)
	}
	var (
		results = []VariantsResult{}
		kept    []*incoming // to install, index for index with at
		at      []int
		buf     = make([]byte, 64<<10)
		seen    = map[string]bool{}
	)
	defer func() {
		for _, in := range kept {
			in.cleanup()
		}
	}()
	for {
		hash, header, body, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("accept variants batch: %w", err)
		}
		var (
			in  *incoming
			res VariantsResult
		)
		if seen[hash] {
			res = VariantsResult{Hash: hash, Err: fmt.Errorf("accept variants of blob %s: repeated in the batch: %w", hash, ErrMalformed)}
			_, err = io.CopyBuffer(io.Discard, ctxio.NewReader(ctx, body), buf)
		} else {
			in, res, err = s.receiveRecord(ctx, hash, header, ctxio.NewReader(ctx, body), buf)
		}
		seen[hash] = true
		if err != nil {
			return nil, fmt.Errorf("accept variants batch: blob %s: %w", hash, err)
		}
		results = append(results, res)
		if in != nil {
			kept = append(kept, in)
			at = append(at, len(results)-1)
		}
	}
	step("received")
	if err := s.syncIncoming(kept); err != nil {
		return nil, fmt.Errorf("accept variants batch: %w", err)
	}
	step("synced")
	if err := s.installBatch(kept); err != nil {
		return nil, fmt.Errorf("accept variants batch: %w", err)
	}
	for i, in := range kept {
		info, err := s.Stat(in.hash)
		results[at[i]] = VariantsResult{Hash: in.hash, Info: info, Err: err}
	}
	return results, nil
}

// receiveRecord takes one record of AcceptVariantsBatch: its variants
// received into temp files and checked. It returns the incoming to
// install when the blob is pending here and every variant passed; else
// the record's result. err is for what breaks the batch (the body, or
// the disk).
func (s *Store) receiveRecord(ctx context.Context, hash, header string, body io.Reader, buf []byte) (_ *incoming, res VariantsResult, err error) {
	res.Hash = hash
	discard := func(e error) (*incoming, VariantsResult, error) {
		res.Err = e
		_, err := io.CopyBuffer(io.Discard, body, buf)
		return nil, res, err
	}
	if !validHash(hash) {
		return discard(fmt.Errorf("accept variants of blob %.80q: %w", hash, ErrInvalidHash))
	}
	hdr, err := ParseBlobHeader(header)
	if err != nil {
		return discard(fmt.Errorf("accept variants of blob %s: %w", hash, err))
	}
	info, err := s.Stat(hash)
	if err != nil {
		return discard(fmt.Errorf("accept variants: %w", err))
	}
	if hdr.Size != info.Size {
		return discard(fmt.Errorf("accept variants of blob %s: header gives %d bytes, the blob has %d: %w", hash, hdr.Size, info.Size, ErrMalformed))
	}
	if !s.isPending(hash) {
		res.Info = info
		return discard(nil)
	}
	in := &incoming{s: s, hash: hash, hdr: hdr}
	if err := in.receiveVariants(body, buf); err != nil {
		in.cleanup()
		if errors.Is(err, ErrMalformed) {
			// The record's length is not its header's. If the batch
			// itself was cut short, its next record says so.
			return discard(fmt.Errorf("accept variants of blob %s: %w", hash, err))
		}
		return nil, res, err
	}
	sent := len(in.variants)
	if err := in.dropBadVariants(ctx); err != nil {
		in.cleanup()
		return nil, res, err
	}
	if dropped := sent - len(in.variants); dropped > 0 {
		in.cleanup()
		s.queueBlob(hash, 0)
		res.Err = fmt.Errorf("accept variants of blob %s: %d of the %d variants sent do not decompress to the blob's bytes: %w", hash, dropped, sent, ErrHashMismatch)
		return nil, res, nil
	}
	return in, res, nil
}

// syncIncoming makes the variant temp files of a batch durable and closes
// them: one shared syncfs round (groupSync), or without syncfs an fsync
// of each, concurrently.
func (s *Store) syncIncoming(batch []*incoming) error {
	var files []*os.File
	for _, in := range batch {
		files = append(files, in.files...)
		in.files = nil
	}
	if len(files) == 0 {
		return nil
	}
	syncClose := func(f *os.File) error {
		err := f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	useSyncFS := batchSyncFS && haveSyncFS
	if useSyncFS {
		syncClose = (*os.File).Close
	}
	if err := parallel(files, syncClose); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if useSyncFS {
		return s.fsSync.wait()
	}
	return nil
}

// installBatch installs the received variants of a batch under the locks
// of all its blobs (taken in sorted order, as PutBatch's): each blob
// still pending gets its variants renamed into place, then one syncfs
// round (or an fsync of each shard folder touched) makes the renames
// durable, and only then are the markers removed and the readers told
// (settleVariants).
func (s *Store) installBatch(batch []*incoming) error {
	hashes := make([]string, 0, len(batch))
	for _, in := range batch {
		hashes = append(hashes, in.hash)
	}
	slices.Sort(hashes)
	hashes = slices.Compact(hashes)
	for _, h := range hashes {
		defer s.locks.lock(h)()
	}
	type placed struct {
		hash    string
		changed bool
	}
	var done []placed
	dirs := map[string]bool{}
	for _, in := range batch {
		if !s.stillPending(in.hash) {
			continue // a local pass, or an earlier record of the batch, won
		}
		_, changed, err := publishVariants(s.path(in.hash), in.variants, false, true)
		if err != nil {
			return err
		}
		done = append(done, placed{in.hash, changed})
		if changed {
			dirs[filepath.Dir(s.path(in.hash))] = true
		}
		step("placed")
	}
	syncDone := syncDirs
	if batchSyncFS && haveSyncFS {
		syncDone = func(map[string]bool) error { return s.fsSync.wait() }
	}
	if len(dirs) > 0 {
		if err := syncDone(dirs); err != nil {
			return err
		}
	}
	step("committed")
	for _, p := range done {
		if err := s.settleVariants(p.hash, p.changed); err != nil {
			return err
		}
		s.comp.accepted.Add(1)
	}
	return nil
}
