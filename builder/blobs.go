package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net/http"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
)

// putBlob serves PUT /v1/blobs/{hash}: the body is the file's bytes, stored
// only if its SHA-256 is the hash in the path. 201 when stored, 200 when the
// cluster already held it (the body is still read and checked).
func (a *API) putBlob(w http.ResponseWriter, r *http.Request) {
	want := r.PathValue("hash")
	if !atoll.ValidHash(want) {
		a.fail(w, r, errorf(http.StatusBadRequest, "%q is not a SHA-256 in lowercase hex (64 characters of 0-9a-f)", want))
		return
	}
	if r.ContentLength > a.cfg.MaxBlobBytes {
		a.fail(w, r, errorf(http.StatusRequestEntityTooLarge, "blob of %d bytes is over the limit of %d", r.ContentLength, a.cfg.MaxBlobBytes))
		return
	}
	_, statErr := a.blobs.Stat(r.Context(), want)
	existed := statErr == nil

	// Hash alongside the store so a mismatch can report what was received.
	h := &countingHash{h: sha256.New()}
	body := io.TeeReader(http.MaxBytesReader(w, r.Body, a.cfg.MaxBlobBytes), h)
	info, err := a.blobs.Put(r.Context(), want, body)
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			err = errorf(http.StatusRequestEntityTooLarge, "blob larger than the limit of %d bytes", mbe.Limit)
		case errors.Is(err, blobstore.ErrHashMismatch):
			io.Copy(h, io.LimitReader(r.Body, a.cfg.MaxBlobBytes-h.n)) // in case the store stopped early
			got := hex.EncodeToString(h.h.Sum(nil))
			e := errorf(http.StatusBadRequest, "content does not match its hash: got sha256 %s, want %s; was the file changed during upload?", got, want)
			e.body.Got, e.body.Want = got, want
			err = e
		}
		a.fail(w, r, err)
		return
	}
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	WriteJSON(w, status, atoll.BlobResponse{Hash: want, Size: info.Size})
}

type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}
