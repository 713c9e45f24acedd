package builder

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
)

// BatchBlobs is implemented by a Blobs that stores a whole batch at once
// (node: one group commit, one push per other owner). PutBatch returns
// the Info of every blob next yields, in order, once each is stored; any
// error means no blob of the batch may be counted as stored by it (an
// error wrapping blobstore.ErrHashMismatch names the blob).
type BatchBlobs interface {
	PutBatch(ctx context.Context, next blobstore.BatchNext) ([]blobstore.Info, error)
}

// putBlobBatch serves POST /v1/blobs: a batch of blobs in the format of
// atoll.BlobBatchContentType, at most MaxBatchBytes and MaxBatchBlobs
// (413 past either, or past MaxBlobBytes for one blob). Every blob is
// checked against its hash; one that does not match fails the whole batch
// with 400 naming it, and the answer acknowledges nothing. 201 lists every
// blob, each stored on a majority of its owners.
func (a *API) putBlobBatch(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != atoll.BlobBatchContentType {
		a.fail(w, r, errorf(http.StatusUnsupportedMediaType, "a blob batch is sent as Content-Type %s (records \"<sha256> <size>\\n<bytes>\"); one blob alone goes to PUT /v1/blobs/{hash}", atoll.BlobBatchContentType))
		return
	}
	if r.ContentLength > a.cfg.MaxBatchBytes {
		a.fail(w, r, errorf(http.StatusRequestEntityTooLarge, "blob batch of %d bytes is over the limit of %d; send smaller batches", r.ContentLength, a.cfg.MaxBatchBytes))
		return
	}
	br := atoll.NewBlobBatchReader(http.MaxBytesReader(w, r.Body, a.cfg.MaxBatchBytes), a.cfg.MaxBatchBlobs, a.cfg.MaxBlobBytes)
	next := func() (string, io.Reader, error) {
		h, _, body, err := br.Next()
		return h, body, err
	}
	var infos []blobstore.Info
	var err error
	if bb, ok := a.blobs.(BatchBlobs); ok {
		infos, err = bb.PutBatch(r.Context(), next)
	} else {
		infos, err = a.putEach(r.Context(), next)
	}
	if err != nil {
		a.fail(w, r, a.batchError(err))
		return
	}
	out := atoll.BlobBatchResponse{Blobs: make([]atoll.BlobResponse, len(infos))}
	for i, info := range infos {
		out.Blobs[i] = atoll.BlobResponse{Hash: info.Hash, Size: info.Size}
	}
	WriteJSON(w, http.StatusCreated, out)
}

// putEach stores a batch one Put at a time, for a Blobs without PutBatch
// (test doubles): a bad blob still fails the batch and nothing is
// acknowledged, but the blobs before it stay stored (harmless: content
// addressed, and collected when no deploy names them).
func (a *API) putEach(ctx context.Context, next blobstore.BatchNext) ([]blobstore.Info, error) {
	var infos []blobstore.Info
	for {
		h, body, err := next()
		if err == io.EOF {
			return infos, nil
		}
		if err != nil {
			return nil, err
		}
		info, err := a.blobs.Put(ctx, h, body)
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
}

// batchError maps a failed batch to the answer a client can act on.
func (a *API) batchError(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "blob batch larger than the limit of %d bytes; send smaller batches", mbe.Limit)
	case errors.Is(err, atoll.ErrBatchTooMany):
		return errorf(http.StatusRequestEntityTooLarge, "%v blobs; send smaller batches", err)
	case errors.Is(err, atoll.ErrBatchBlobTooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "%v of %d bytes", err, a.cfg.MaxBlobBytes)
	case errors.Is(err, atoll.ErrBatchMalformed), errors.Is(err, blobstore.ErrInvalidHash):
		return errorf(http.StatusBadRequest, "%v; nothing of the batch was stored", err)
	case errors.Is(err, blobstore.ErrHashMismatch):
		return errorf(http.StatusBadRequest, "content does not match its hash: %v; nothing of the batch was stored: was the file changed during upload?", err)
	}
	return err
}
