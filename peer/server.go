package peer

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
)

// Importer is the store a pushed blob goes into (blobstore.Store.Import):
// verified, and durable before it returns.
type Importer interface {
	Import(ctx context.Context, hash, header string, body io.Reader) (blobstore.Info, error)
}

// Holder answers which blobs a node holds (blobstore.Store.Present).
type Holder interface {
	Present(hashes []string) map[string]int64
}

var _ Importer = (*blobstore.Store)(nil)
var _ Holder = (*blobstore.Store)(nil)

// PutBlobHandler serves PUT BlobPath: it stores a blob pushed by a peer
// (identity and variants, verified) and answers 201 PushResponse once it
// is durable. The caller authenticates the request.
func PutBlobHandler(store Importer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		info, err := store.Import(r.Context(), r.PathValue("hash"), r.Header.Get(HeaderBlob), r.Body)
		if err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, blobstore.ErrHashMismatch) || errors.Is(err, blobstore.ErrInvalidHash) || errors.Is(err, blobstore.ErrMalformed) {
				status = http.StatusBadRequest
			} else if errors.Is(err, blobstore.ErrNoSpace) {
				status = http.StatusInsufficientStorage // disk full: the pusher's error matches ErrNoSpace
			}
			builder.WriteError(w, status, err.Error())
			return
		}
		builder.WriteJSON(w, http.StatusCreated, PushResponse{Hash: info.Hash, Size: info.Size})
	}
}

// GetBlobHandler serves GET BlobPath: a blob the store holds, with its
// variants, as a transfer. It never fetches from elsewhere: the asking
// node walks the sources itself. The caller authenticates the request.
func GetBlobHandler(store Exporter) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hdr, body, length, err := store.Export(r.PathValue("hash"))
		switch {
		case errors.Is(err, blobstore.ErrNotFound):
			builder.WriteError(w, http.StatusNotFound, "blob not on this node")
			return
		case errors.Is(err, blobstore.ErrInvalidHash):
			builder.WriteError(w, http.StatusBadRequest, err.Error())
			return
		case err != nil:
			builder.WriteError(w, http.StatusInternalServerError, err.Error())
			return
		}
		defer body.Close()
		w.Header().Set(HeaderBlob, hdr)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
		w.WriteHeader(http.StatusOK)
		io.Copy(w, body)
	}
}

// HasHandler serves POST HasPath: which of the blobs asked for the store
// holds. The caller authenticates the request.
func HasHandler(store Holder) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hashes, err := ParseHasRequest(r.Body, MaxHasHashes)
		if err != nil {
			builder.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		builder.WriteJSON(w, http.StatusOK, HasResponse{Present: store.Present(hashes)})
	}
}
