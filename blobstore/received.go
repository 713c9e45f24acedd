package blobstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/atoll-hosting/atoll/internal/ctxio"
)

// Received is a small blob fetched whole into memory from a peer
// (ImportSmall), not yet stored: its transfer header and body. The
// identity bytes have been checked against Hash; the variants have not (a
// reader checks a variant before serving it, and Store checks them all as
// Import does). Nothing modifies it once returned.
type Received struct {
	Hash   string
	Header BlobHeader
	Body   []byte // identity bytes, then each variant of Header, in order
}

// Identity returns the identity bytes, which hash to Hash.
func (r *Received) Identity() []byte { return r.Body[:r.Header.Size] }

// Variant returns the bytes of the variant with the given encoding as the
// peer sent them, unchecked, and false if it sent none.
func (r *Received) Variant(encoding string) ([]byte, bool) {
	off := r.Header.Size
	for _, v := range r.Header.Variants {
		if v.Encoding == encoding {
			return r.Body[off : off+v.Size], true
		}
		off += v.Size
	}
	return nil, false
}

// Info returns what Store would return if every variant the peer sent
// checks out: the blob's Info with the variants smaller than the identity
// bytes (Import drops the others), Pending when it has none and may
// compress. Use it only together with a check of
// each variant before its bytes are served.
func (r *Received) Info() Info {
	info := Info{Hash: r.Hash, Size: r.Header.Size}
	for _, v := range r.Header.Variants {
		if v.Size < r.Header.Size {
			info.Variants = append(info.Variants, v)
		}
	}
	if len(info.Variants) == 0 {
		// Sent bare: Store will mark it pending if it may compress, and a
		// reader compresses it per request meanwhile, as for a stored one.
		info.Pending, _ = mayCompress(bytes.NewReader(r.Identity()), r.Header.Size)
	}
	return info
}

// Store stores the blob as a cache copy (ImportCache), with every check of
// Import: a variant that does not decompress to the identity bytes is
// dropped, so the Info returned may list fewer variants than r.Info.
func (r *Received) Store(ctx context.Context, store *Store) (Info, error) {
	return store.ImportCache(ctx, r.Hash, r.Header.String(), bytes.NewReader(r.Body))
}

// ImportSmall takes a transfer, as Import does, of a blob its caller wants
// in memory at once: when the blob has at most maxSize identity bytes (and
// the transfer at most 4*maxSize bytes), the whole body is read into
// memory, the identity bytes are checked against hash, and it is returned
// as a Received without storing anything (the caller stores it, e.g. in
// the background, with Received.Store). A bigger blob is stored as
// ImportCache stores it and the Received is nil.
//
// The errors are those of ImportCache: ErrInvalidHash for an invalid name,
// ErrHashMismatch when the identity bytes do not hash to hash, ErrMalformed
// when the body does not match its header.
func (s *Store) ImportSmall(ctx context.Context, hash, header string, body io.Reader, maxSize int64) (Info, *Received, error) {
	if !validHash(hash) {
		return Info{}, nil, fmt.Errorf("import blob %q: %w", hash, ErrInvalidHash)
	}
	hdr, err := ParseBlobHeader(header)
	if err != nil {
		return Info{}, nil, err
	}
	// The variants' lengths come from the sender: one that is not smaller
	// than the identity bytes is useless but could be huge, so such a
	// transfer is streamed to disk, never allocated.
	if hdr.Size > maxSize || hdr.Length() > int64(1+len(encodings))*maxSize {
		info, err := s.ImportCache(ctx, hash, header, body)
		return info, nil, err
	}
	r, err := receive(ctx, hash, hdr, body)
	if err != nil {
		return Info{}, nil, err
	}
	return Info{}, r, nil
}

// receive reads a transfer body of hdr into memory and checks its identity
// bytes against hash.
func receive(ctx context.Context, hash string, hdr BlobHeader, body io.Reader) (*Received, error) {
	n := hdr.Length()
	b := make([]byte, n+1) // one more, to notice a body that goes on
	got, err := io.ReadFull(ctxio.NewReader(ctx, body), b)
	switch {
	case err == nil:
		return nil, fmt.Errorf("body longer than the %d bytes its header gives: %w", n, ErrMalformed)
	case !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("read body: %w", err)
	case int64(got) < n:
		return nil, fmt.Errorf("body ended after %d of its %d bytes: %w (%w)", got, n, ErrMalformed, io.ErrUnexpectedEOF)
	}
	r := &Received{Hash: hash, Header: hdr, Body: b[:n:n]}
	sum := sha256.Sum256(r.Identity())
	if got := hex.EncodeToString(sum[:]); got != hash {
		return nil, fmt.Errorf("got %s, want %s: %w", got, hash, ErrHashMismatch)
	}
	return r, nil
}
