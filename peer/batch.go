package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
)

// BatchPath takes a POST of a blob batch (atoll.BlobBatchContentType): the
// identity bytes of many blobs, stored with one group commit. A node
// whose binary predates it answers 404: PushBatch's caller then pushes
// blob by blob (Push).
const BatchPath = "/v1/peer/blobs"

// Limits of one batch a node accepts on BatchPath; PushBatch's callers
// keep their batches within them.
const (
	MaxBatchBlobs = 4096
	MaxBatchBytes = 256 << 20
)

// ErrNoBatch is what PushBatch returns when the peer has no BatchPath (an
// older node): push the blobs one at a time instead.
var ErrNoBatch = errors.New("peer does not take blob batches")

// Opener is the store a batch is pushed from (blobstore.Store.Open).
type Opener interface {
	Open(hash, encoding string) (*os.File, int64, error)
}

// BatchImporter is the store a pushed batch goes into
// (blobstore.Store.PutBatch): verified, and durable before it returns.
type BatchImporter interface {
	PutBatch(ctx context.Context, next blobstore.BatchNext) ([]blobstore.Info, error)
}

var (
	_ Opener        = (*blobstore.Store)(nil)
	_ BatchImporter = (*blobstore.Store)(nil)
)

// BatchResponse answers a POST to BatchPath once every blob of the batch
// is durable: each, in the order sent.
type BatchResponse = atoll.BlobBatchResponse

// PushBatch sends the identity bytes of hashes, read from store, to the
// peer at baseURL in one request, and returns nil once the peer answered
// that every one of them is durable there (without variants: the peer
// makes its own, blobstore DESIGN.md I14). It fails with ErrNoBatch when
// the peer has no BatchPath, with an *Error when it refuses the batch, and
// with an error wrapping blobstore.ErrNotFound when store lacks a blob.
// The body is streamed: the request is sent again (on a kept-alive
// connection the peer closed) by reading the files anew.
func (c *Client) PushBatch(ctx context.Context, store Opener, baseURL string, hashes []string) error {
	if len(hashes) > MaxBatchBlobs {
		return fmt.Errorf("push batch: %d blobs: %w", len(hashes), atoll.ErrBatchTooMany)
	}
	var (
		mu    sync.Mutex
		sizes []int64 // of the last body written whole
	)
	open := func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			got, err := writeBatch(pw, store, hashes)
			if err == nil {
				mu.Lock()
				sizes = got
				mu.Unlock()
			}
			pw.CloseWithError(err)
		}()
		return pr, nil
	}
	body, _ := open()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint(baseURL, BatchPath), body)
	if err != nil {
		body.Close()
		return fmt.Errorf("push batch: %w", err)
	}
	req.GetBody = open
	req.Header.Set("Content-Type", atoll.BlobBatchContentType)
	idempotent(req) // storing blobs twice changes nothing
	resp, err := c.do(c.blobs(), req)
	var pe *Error
	if errors.As(err, &pe) && pe.StatusCode == http.StatusNotFound && pe.Kind == "" {
		return fmt.Errorf("push batch to %s: %w", baseURL, ErrNoBatch)
	}
	if err != nil {
		return fmt.Errorf("push batch of %d blobs to %s: %w", len(hashes), baseURL, err)
	}
	defer drainClose(resp.Body)
	var out BatchResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, int64(len(hashes))*128+1024)).Decode(&out); err != nil {
		return fmt.Errorf("push batch to %s: read answer: %w", baseURL, err)
	}
	if len(out.Blobs) != len(hashes) {
		return fmt.Errorf("push batch to %s: peer answered %d blobs, want %d", baseURL, len(out.Blobs), len(hashes))
	}
	mu.Lock()
	defer mu.Unlock()
	for i, b := range out.Blobs {
		if sizes == nil || b.Hash != hashes[i] || b.Size != sizes[i] {
			return fmt.Errorf("push batch to %s: peer answered %q of %d bytes, want %s of %d", baseURL, b.Hash, b.Size, hashes[i], sizes[i])
		}
	}
	return nil
}

// writeBatch writes the records of hashes, read from store, to w, and
// returns their sizes.
func writeBatch(w io.Writer, store Opener, hashes []string) ([]int64, error) {
	sizes := make([]int64, len(hashes))
	for i, h := range hashes {
		f, size, err := store.Open(h, "")
		if err != nil {
			return nil, fmt.Errorf("push batch: %w", err)
		}
		sizes[i] = size
		err = atoll.WriteBlobRecord(w, h, size, f)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return sizes, nil
}

// batchStatus is the status that answers a batch the store refused with
// err: 413 over the limits, 400 for what the sender got wrong, 507 below
// the disk reserve (the pusher's error then matches ErrNoSpace).
func batchStatus(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe), errors.Is(err, atoll.ErrBatchTooMany):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, blobstore.ErrHashMismatch), errors.Is(err, blobstore.ErrInvalidHash), errors.Is(err, atoll.ErrBatchMalformed):
		return http.StatusBadRequest
	case errors.Is(err, blobstore.ErrNoSpace):
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}

// PutBatchHandler serves POST BatchPath: it stores a batch pushed by a
// peer (each blob verified against its hash, all with one group commit)
// and answers 201 BatchResponse once every blob is durable. A bad blob
// fails the batch (400) and nothing of it is stored. The caller
// authenticates the request.
func PutBatchHandler(store BatchImporter) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		br := atoll.NewBlobBatchReader(http.MaxBytesReader(w, r.Body, MaxBatchBytes), MaxBatchBlobs, 0)
		infos, err := store.PutBatch(r.Context(), func() (string, io.Reader, error) {
			h, _, body, err := br.Next()
			return h, body, err
		})
		if err != nil {
			builder.WriteError(w, batchStatus(err), err.Error())
			return
		}
		out := BatchResponse{Blobs: make([]atoll.BlobResponse, len(infos))}
		for i, info := range infos {
			out.Blobs[i] = atoll.BlobResponse{Hash: info.Hash, Size: info.Size}
		}
		builder.WriteJSON(w, http.StatusCreated, out)
	}
}
