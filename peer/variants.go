package peer

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
)

// VariantsPath is where one owner of a blob sends the compressed variants
// it made to another owner that holds the blob pending, so that the blob
// is compressed once in the cluster (blobstore DESIGN.md, I15).
// PathValue("hash") is the blob's name.
//
//	PUT /v1/peer/variants/{hash}  header HeaderBlob: the blob's transfer
//	    header (its size and variants); body: the variants only, one after
//	    the other, without the identity bytes
//	    -> 200 PushResponse once they are verified and durable, or the blob
//	       had its variants already (the body is read and discarded);
//	       404 the receiver does not hold the blob (the sender pushes the
//	       whole blob instead; an older node answers 404 too, as for any
//	       path it does not know, and compresses its own copy);
//	       400 a variant that does not decompress to the blob's bytes, or a
//	       malformed transfer (the receiver compresses the blob itself);
//	       507 the receiver's disk is below its reserve.
const VariantsPath = "/v1/peer/variants/{hash}"

// VariantsExporter is the store variants are sent from
// (blobstore.Store.ExportVariants).
type VariantsExporter interface {
	ExportVariants(hash string) (header string, body io.ReadCloser, length int64, err error)
}

// VariantsAcceptor is the store sent variants go into
// (blobstore.Store.AcceptVariants).
type VariantsAcceptor interface {
	AcceptVariants(ctx context.Context, hash, header string, body io.Reader) (blobstore.Info, error)
}

var (
	_ VariantsExporter = (*blobstore.Store)(nil)
	_ VariantsAcceptor = (*blobstore.Store)(nil)
)

// PushVariants sends the variants store made of a blob (maybe none worth
// keeping) to the peer at baseURL, which holds the blob, and returns nil
// once the peer answered that they are durable there or that it needed
// none. The error wraps blobstore.ErrPending or ErrNotFound when store has
// no variants to send, and is an *Error when the peer refuses them
// (matching blobstore.ErrNotFound when it does not hold the blob).
func (c *Client) PushVariants(ctx context.Context, store VariantsExporter, baseURL, hash string) error {
	url := endpoint(baseURL, strings.Replace(VariantsPath, "{hash}", hash, 1))
	return c.putTransfer(ctx, url, hash, "push variants of blob", store.ExportVariants)
}

// PutVariantsHandler serves PUT VariantsPath: it stores the variants a
// peer made of a blob this node holds pending, verified (see
// blobstore.Store.AcceptVariants), and answers 200 PushResponse once they
// are durable. The caller authenticates the request.
func PutVariantsHandler(store VariantsAcceptor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		info, err := store.AcceptVariants(r.Context(), r.PathValue("hash"), r.Header.Get(HeaderBlob), r.Body)
		if err != nil {
			status := http.StatusInternalServerError
			switch {
			case errors.Is(err, blobstore.ErrNotFound):
				status = http.StatusNotFound
			case errors.Is(err, blobstore.ErrHashMismatch), errors.Is(err, blobstore.ErrInvalidHash), errors.Is(err, blobstore.ErrMalformed):
				status = http.StatusBadRequest
			case errors.Is(err, blobstore.ErrNoSpace):
				status = http.StatusInsufficientStorage
			}
			builder.WriteError(w, status, err.Error())
			return
		}
		builder.WriteJSON(w, http.StatusOK, PushResponse{Hash: info.Hash, Size: info.Size})
	}
}
