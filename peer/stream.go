package peer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
)

// Stream asks the peer at baseURL for blob hash (GET, as Fetch) and
// returns the blob's size and a reader of bytes [start, start+length) of
// its identity bytes (length < 0: to the end), stored nowhere. The caller
// closes it; the ctx bounds the whole read, not only the call.
//
// The bytes are checked against hash as they pass, which needs all of the
// identity bytes: the reader reads the blob to its end (dropping what lies
// outside the section) and holds back the section's last byte until the
// hash matched. A peer that sent other bytes makes the reader fail with
// an error wrapping blobstore.ErrHashMismatch before that last byte, so a
// reader of a mismatching blob never delivers its section whole: whoever
// relays it with a Content-Length of the section ends short, which an
// HTTP client takes as a failed answer. The start and length are checked
// against the size the peer announced (blobstore.ErrMalformed past it).
func (c *Client) Stream(ctx context.Context, baseURL, hash string, start, length int64) (int64, io.ReadCloser, error) {
	if !atoll.ValidHash(hash) {
		return 0, nil, fmt.Errorf("stream blob %q: %w", hash, blobstore.ErrInvalidHash)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, blobURL(baseURL, hash), nil)
	if err != nil {
		return 0, nil, fmt.Errorf("stream blob %s: %w", hash, err)
	}
	resp, err := c.do(c.blobs(), req)
	if err != nil {
		return 0, nil, fmt.Errorf("stream blob %s from %s: %w", hash, baseURL, err)
	}
	hdr, err := blobstore.ParseBlobHeader(resp.Header.Get(HeaderBlob))
	if err == nil && resp.ContentLength >= 0 && resp.ContentLength != hdr.Length() {
		err = fmt.Errorf("Content-Length %d, header says %d: %w", resp.ContentLength, hdr.Length(), blobstore.ErrMalformed)
	}
	if length < 0 {
		length = hdr.Size - start
	}
	if err == nil && (start < 0 || length < 0 || start+length > hdr.Size) {
		err = fmt.Errorf("bytes %d+%d of a blob of %d: %w", start, length, hdr.Size, blobstore.ErrMalformed)
	}
	if err != nil {
		resp.Body.Close()
		return 0, nil, fmt.Errorf("stream blob %s from %s: %w", hash, baseURL, err)
	}
	return hdr.Size, newVerifiedSection(resp.Body, hash, hdr.Size, start, length), nil
}

// verifiedSection reads a section of a blob's identity bytes from the
// first size bytes of body, hashing all size of them; see Stream.
type verifiedSection struct {
	body       io.ReadCloser
	hash       string
	sum        hash.Hash
	size       int64
	pos        int64 // identity bytes read from body
	start, end int64 // the section
	err        error // sticky
}

func newVerifiedSection(body io.ReadCloser, hash string, size, start, length int64) *verifiedSection {
	return &verifiedSection{body: body, hash: hash, sum: sha256.New(), size: size, start: start, end: start + length}
}

// Read returns the section's bytes but the last, then the last once the
// whole blob was read and matched its hash.
func (v *verifiedSection) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if v.pos < v.start {
		if err := v.skip(v.start); err != nil {
			return 0, err
		}
	}
	if v.pos+1 < v.end { // the bytes before the last pass at once
		n := int(min(int64(len(p)), v.end-1-v.pos))
		k, err := v.body.Read(p[:n])
		v.sum.Write(p[:k])
		v.pos += int64(k)
		if err == io.EOF {
			err = v.fail(io.ErrUnexpectedEOF)
		}
		return k, err
	}
	// Held back: the last byte, then the rest of the blob, then the check.
	var last [1]byte
	k := 0
	if v.pos < v.end {
		if _, err := io.ReadFull(v.body, last[:]); err != nil {
			return 0, v.fail(err)
		}
		v.sum.Write(last[:])
		v.pos++
		k = 1
	}
	if err := v.skip(v.size); err != nil {
		return 0, err
	}
	if got := hex.EncodeToString(v.sum.Sum(nil)); got != v.hash {
		return 0, v.fail(fmt.Errorf("blob %s: the peer sent bytes hashing to %s: %w", v.hash, got, blobstore.ErrHashMismatch))
	}
	v.err = io.EOF
	if k == 0 {
		return 0, io.EOF
	}
	p[0] = last[0]
	return 1, io.EOF
}

// skip hashes the identity bytes up to offset to without returning them.
func (v *verifiedSection) skip(to int64) error {
	n, err := io.CopyN(v.sum, v.body, to-v.pos)
	v.pos += n
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return v.fail(err)
	}
	return nil
}

func (v *verifiedSection) fail(err error) error {
	v.err = fmt.Errorf("stream blob %s: %w", v.hash, err)
	return v.err
}

// Close closes the answer's body, leaving the variants unread.
func (v *verifiedSection) Close() error { return v.body.Close() }
