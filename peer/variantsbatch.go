package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
)

// VariantsBatchPath takes a POST of the variants one owner made of many
// blobs (VariantsBatchContentType), stored with one group commit
// (blobstore.Store.AcceptVariantsBatch): the batched form of VariantsPath,
// used from feature level atoll.LevelVariantBatches, when every node
// serves it.
//
//	POST /v1/peer/variants  body: a variants batch
//	    -> 200 VariantsBatchResponse once the variants of every record
//	       the receiver kept are verified and durable: one result per
//	       record, in order;
//	       400 a batch that does not parse (nothing of it is kept);
//	       413 more than MaxVariantsBatchBlobs records or
//	       MaxVariantsBatchBytes bytes;
//	       507 the receiver's disk is below its reserve.
const VariantsBatchPath = "/v1/peer/variants"

// VariantsBatchContentType is the body of a POST to VariantsBatchPath: a
// blob batch (atoll.BlobBatchContentType's records, "<hash> <size>\n"
// then size bytes) whose record bytes are a blob's transfer header
// (blobstore.BlobHeader, as ExportVariants gives it), a newline, and the
// variants without the identity bytes:
//
//	<hash> <size>\nsize=<n>[; br=<n>][; zstd=<n>][; gzip=<n>]\n<variant bytes>
const VariantsBatchContentType = "application/vnd.atoll.variants"

// Limits of one variants batch a node accepts; PushVariantsBatch's
// callers keep their batches within them.
const (
	MaxVariantsBatchBlobs = 1024
	MaxVariantsBatchBytes = 64 << 20
)

// Statuses of one record of a variants batch (VariantsBatchResult).
const (
	// VariantsStored: the blob has its variants there now, these or ones
	// it had (durable).
	VariantsStored = "stored"
	// VariantsMissing: the receiver does not hold the blob.
	VariantsMissing = "missing"
	// VariantsRefused: a variant did not decompress to the blob's bytes
	// (the receiver compresses its own copy now), or the record was
	// malformed (the blob keeps waiting there).
	VariantsRefused = "refused"
)

// VariantsBatchResponse answers a POST to VariantsBatchPath.
type VariantsBatchResponse struct {
	Blobs []VariantsBatchResult `json:"blobs"`
}

// VariantsBatchResult is what the receiver did with one record.
type VariantsBatchResult struct {
	Hash   string `json:"hash"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// VariantsBatchAcceptor is the store a variants batch goes into
// (blobstore.Store.AcceptVariantsBatch).
type VariantsBatchAcceptor interface {
	AcceptVariantsBatch(ctx context.Context, next blobstore.VariantsNext) ([]blobstore.VariantsResult, error)
}

var _ VariantsBatchAcceptor = (*blobstore.Store)(nil)

// PushVariantsBatch sends the variants store made of hashes to the peer
// at baseURL in one request and returns what the peer did with each, in
// the order of hashes: Status "" and Error saying why when a blob was not
// sent (store no longer holds it, or its variants are still to be made).
// The error is for the request as a
// whole: ErrNoBatch when the peer has no VariantsBatchPath, an *Error
// when it refused the batch. The body is streamed from the variant
// files, opened before the request (and again if the transport sends it
// again on a kept-alive connection the peer closed).
func (c *Client) PushVariantsBatch(ctx context.Context, store VariantsExporter, baseURL string, hashes []string) ([]VariantsBatchResult, error) {
	if len(hashes) > MaxVariantsBatchBlobs {
		return nil, fmt.Errorf("push variants batch: %d blobs: %w", len(hashes), atoll.ErrBatchTooMany)
	}
	out := make([]VariantsBatchResult, len(hashes))
	var send []string
	for i, h := range hashes {
		out[i].Hash = h
		header, body, _, err := store.ExportVariants(h)
		if err != nil {
			out[i].Error = err.Error()
			continue
		}
		body.Close()
		if _, err := blobstore.ParseBlobHeader(header); err != nil {
			out[i].Error = err.Error()
			continue
		}
		send = append(send, h)
	}
	if len(send) == 0 {
		return out, nil
	}
	open := func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeVariantsBatch(pw, store, send)) }()
		return pr, nil
	}
	body, _ := open()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint(baseURL, VariantsBatchPath), body)
	if err != nil {
		body.Close()
		return nil, fmt.Errorf("push variants batch: %w", err)
	}
	req.GetBody = open
	req.Header.Set("Content-Type", VariantsBatchContentType)
	idempotent(req) // variants taken twice change nothing
	resp, err := c.do(c.blobs(), req)
	var pe *Error
	if errors.As(err, &pe) && pe.StatusCode == http.StatusNotFound && pe.Kind == "" {
		return nil, fmt.Errorf("push variants batch to %s: %w", baseURL, ErrNoBatch)
	}
	if err != nil {
		return nil, fmt.Errorf("push variants batch of %d blobs to %s: %w", len(send), baseURL, err)
	}
	defer drainClose(resp.Body)
	var got VariantsBatchResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, int64(len(send))*1024+1024)).Decode(&got); err != nil {
		return nil, fmt.Errorf("push variants batch to %s: read answer: %w", baseURL, err)
	}
	if len(got.Blobs) != len(send) {
		return nil, fmt.Errorf("push variants batch to %s: peer answered %d blobs, want %d", baseURL, len(got.Blobs), len(send))
	}
	j := 0
	for i := range out {
		if out[i].Error != "" {
			continue
		}
		r := got.Blobs[j]
		j++
		if r.Hash != out[i].Hash {
			return nil, fmt.Errorf("push variants batch to %s: peer answered %q, want %s", baseURL, r.Hash, out[i].Hash)
		}
		out[i] = r
	}
	return out, nil
}

// writeVariantsBatch writes the records of hashes, their variants read
// from store, to w.
func writeVariantsBatch(w io.Writer, store VariantsExporter, hashes []string) error {
	for _, h := range hashes {
		header, body, length, err := store.ExportVariants(h)
		if err != nil {
			return fmt.Errorf("push variants batch: %w", err)
		}
		line := header + "\n"
		err = atoll.WriteBlobRecord(w, h, int64(len(line))+length, io.MultiReader(strings.NewReader(line), body))
		body.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// readHeaderLine reads a record's transfer header and its newline from
// r, one byte at a time (r is buffered), at most
// blobstore.MaxBlobHeaderLen bytes before the newline.
func readHeaderLine(r io.Reader) (string, error) {
	var b strings.Builder
	var c [1]byte
	for b.Len() <= blobstore.MaxBlobHeaderLen {
		if _, err := io.ReadFull(r, c[:]); err != nil {
			return "", fmt.Errorf("variants record without its header line: %w", atoll.ErrBatchMalformed)
		}
		if c[0] == '\n' {
			return b.String(), nil
		}
		b.WriteByte(c[0])
	}
	return "", fmt.Errorf("variants record header longer than %d bytes: %w", blobstore.MaxBlobHeaderLen, atoll.ErrBatchMalformed)
}

// PutVariantsBatchHandler serves POST VariantsBatchPath: it stores the
// variants of a batch a peer sent (each verified, all with one group
// commit, blobstore.Store.AcceptVariantsBatch) and answers 200
// VariantsBatchResponse. The caller authenticates the request.
func PutVariantsBatchHandler(store VariantsBatchAcceptor) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		br := atoll.NewBlobBatchReader(http.MaxBytesReader(w, r.Body, MaxVariantsBatchBytes), MaxVariantsBatchBlobs, 0)
		results, err := store.AcceptVariantsBatch(r.Context(), func() (string, string, io.Reader, error) {
			h, _, body, err := br.Next()
			if err != nil {
				return "", "", nil, err
			}
			header, err := readHeaderLine(body)
			return h, header, body, err
		})
		if err != nil {
			builder.WriteError(w, batchStatus(err), err.Error())
			return
		}
		out := VariantsBatchResponse{Blobs: make([]VariantsBatchResult, len(results))}
		for i, res := range results {
			out.Blobs[i] = VariantsBatchResult{Hash: res.Hash, Status: VariantsStored}
			switch {
			case res.Err == nil:
			case errors.Is(res.Err, blobstore.ErrNotFound):
				out.Blobs[i].Status = VariantsMissing
			default:
				out.Blobs[i].Status, out.Blobs[i].Error = VariantsRefused, res.Err.Error()
			}
		}
		builder.WriteJSON(w, http.StatusOK, out)
	}
}
