package blobstore

import (
	"context"
	"fmt"
	"io"

	"github.com/atoll-hosting/atoll/internal/ctxio"
)

// Variants made by another node (DESIGN.md, I15). The blob's owners
// compress it once in the cluster: one makes the variants and sends them
// to the others, which would otherwise each compress their own copy. The
// variants travel in the transfer format (BlobHeader) without the
// identity bytes, which the receiver holds already:
//
//	header: size=<n>[; br=<n>][; zstd=<n>][; gzip=<n>]   (as Export's)
//	body:   <br bytes><zstd bytes><gzip bytes>            (no identity bytes)
//
// A header with no variant says the sender found none worth keeping.

// ExportVariants opens the variants of a stored blob for sending to another
// holder of it (AcceptVariants): header is the blob's transfer header (its
// size and the variants kept, maybe none), body the variants one after the
// other, length the body's length. The caller closes body. The error wraps
// ErrNotFound when the blob is not stored, ErrPending when its variants
// are still to be made, ErrInvalidHash for a malformed name. Like Export,
// it reads without verifying: the receiver does.
func (s *Store) ExportVariants(hash string) (header string, body io.ReadCloser, length int64, err error) {
	if !validHash(hash) {
		return "", nil, 0, fmt.Errorf("export variants of blob %q: %w", hash, ErrInvalidHash)
	}
	if s.isPending(hash) {
		if !s.Has(hash) {
			return "", nil, 0, fmt.Errorf("export variants of blob %s: %w", hash, ErrNotFound)
		}
		return "", nil, 0, fmt.Errorf("export variants of blob %s: %w", hash, ErrPending)
	}
	h, eb, err := s.export(hash, false)
	if err != nil {
		return "", nil, 0, err
	}
	return h.String(), eb, h.Length() - h.Size, nil
}

// AcceptVariants stores the variants another node made of a blob this
// store holds pending (header and body as ExportVariants gives them), in
// place of compressing it here, and returns the blob's Info.
//
// Every variant is verified before any is kept: it must decompress to
// exactly the blob's bytes (their SHA-256 is the blob's name, I9) and be
// smaller than them. If one fails, none is kept, the blob is compressed
// here at once, and the error wraps ErrHashMismatch. Otherwise they are
// published as the background compressor publishes its own (I14: fsynced,
// renamed, folder fsynced, then the marker removed) and Config.OnVariants
// is called. A header with no variant settles the blob without variants.
//
// A blob that is not pending (compressed here already, or given its
// variants by an earlier call) is left as it is: the body is read and
// discarded and its Info returned. Other errors wrap ErrInvalidHash,
// ErrNotFound (the blob is not stored: nothing is read), ErrMalformed (the
// header does not parse, its size is not the blob's, or the body's length
// is not the one it gives), ErrNoSpace, or are read errors; in every case
// nothing is kept and the blob stays pending.
func (s *Store) AcceptVariants(ctx context.Context, hash, header string, body io.Reader) (_ Info, err error) {
	if !validHash(hash) {
		return Info{}, fmt.Errorf("accept variants of blob %q: %w", hash, ErrInvalidHash)
	}
	hdr, err := ParseBlobHeader(header)
	if err != nil {
		return Info{}, fmt.Errorf("accept variants of blob %s: %w", hash, err)
	}
	info, err := s.Stat(hash)
	if err != nil {
		return Info{}, fmt.Errorf("accept variants: %w", err)
	}
	if hdr.Size != info.Size {
		return Info{}, fmt.Errorf("accept variants of blob %s: header gives %d bytes, the blob has %d: %w", hash, hdr.Size, info.Size, ErrMalformed)
	}
	if !s.isPending(hash) {
		io.CopyBuffer(io.Discard, io.LimitReader(ctxio.NewReader(ctx, body), hdr.Length()-hdr.Size+1), make([]byte, 32<<10))
		return info, nil
	}
	defer func() { err = noSpace(err) }()
	if err := s.checkSpace(); err != nil {
		return Info{}, fmt.Errorf("accept variants of blob %s: %w", hash, err)
	}
	in := &incoming{s: s, hash: hash, hdr: hdr}
	defer in.cleanup()
	installed, err := in.accept(ctx, ctxio.NewReader(ctx, body))
	if err != nil {
		return Info{}, fmt.Errorf("accept variants of blob %s: %w", hash, err)
	}
	if installed {
		s.comp.accepted.Add(1)
	}
	return s.Stat(hash)
}

// accept receives, checks, syncs and installs the variants of an
// AcceptVariants. A variant that fails its check queues the blob for
// compression here now.
func (in *incoming) accept(ctx context.Context, body io.Reader) (installed bool, err error) {
	if err := in.receiveVariants(body, make([]byte, 64<<10)); err != nil {
		return false, err
	}
	sent := len(in.variants)
	if err := in.dropBadVariants(ctx); err != nil {
		return false, err
	}
	if dropped := sent - len(in.variants); dropped > 0 {
		in.s.queueBlob(in.hash, 0)
		return false, fmt.Errorf("%d of the %d variants sent do not decompress to the blob's bytes: %w", dropped, sent, ErrHashMismatch)
	}
	if len(in.files) > 0 {
		if err := syncFiles(in.files); err != nil {
			return false, fmt.Errorf("sync: %w", err)
		}
	}
	for _, f := range in.files {
		if err := f.Close(); err != nil {
			return false, err
		}
	}
	in.files = nil
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return in.s.installVariants(in.hash, in.variants)
}
