package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/atoll-hosting/atoll"
)

// Batch bounds of DeployDir's uploads: a file of at most BatchFileMax
// bytes travels in a batch (POST /v1/blobs) of at most BatchMaxBytes and
// BatchMaxBlobs, well within the server's documented limits; a bigger
// file has its own PUT. A batch is read into memory before it is sent, so
// it can be sent again (to the next node, or once more after a failure).
const (
	BatchFileMax  = 4 << 20
	BatchMaxBytes = 8 << 20
	BatchMaxBlobs = 1024
)

// BatchBlob is one blob of UploadBatch.
type BatchBlob struct {
	Hash string
	Size int64
	// Open returns the blob's bytes; UploadBatch reads Size of them and
	// closes it.
	Open func() (io.ReadCloser, error)
}

// ErrNoBatch is UploadBatch's error when the node has no POST /v1/blobs
// (an older version): upload the blobs one at a time with UploadBlob.
var ErrNoBatch = errors.New("the server does not take blob batches")

// UploadBatch stores blobs with one request (POST /v1/blobs). The server
// checks each against its hash; one that does not match fails the whole
// batch with an *Error (400) naming it, and none is acknowledged. The
// answer lists every blob once each is stored on a majority of its
// owners. A node without the batch route makes it fail with ErrNoBatch.
func (c *Client) UploadBatch(ctx context.Context, blobs []BatchBlob) (atoll.BlobBatchResponse, error) {
	var total int64
	for _, b := range blobs {
		total += b.Size + 96
	}
	buf := bytes.NewBuffer(make([]byte, 0, total))
	for _, b := range blobs {
		r, err := b.Open()
		if err != nil {
			return atoll.BlobBatchResponse{}, err
		}
		err = atoll.WriteBlobRecord(buf, b.Hash, b.Size, r)
		r.Close()
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("blob %s: shorter than its %d bytes: was the file changed during upload?", b.Hash, b.Size)
		}
		if err != nil {
			return atoll.BlobBatchResponse{}, err
		}
	}
	req, err := c.newRequest(ctx, "POST", "/v1/blobs", bytes.NewReader(buf.Bytes()))
	if err != nil {
		return atoll.BlobBatchResponse{}, err
	}
	req.Header.Set("Content-Type", atoll.BlobBatchContentType)
	var out atoll.BlobBatchResponse
	err = c.do(req, &out)
	if hasStatus(err, http.StatusNotFound) || hasStatus(err, http.StatusMethodNotAllowed) {
		return out, fmt.Errorf("%w: %w", ErrNoBatch, err)
	}
	if err == nil && len(out.Blobs) != len(blobs) {
		err = fmt.Errorf("POST /v1/blobs: the server acknowledged %d blobs of %d", len(out.Blobs), len(blobs))
	}
	return out, err
}

// uploadUnit is one request of uploadAll: a batch of small files, or one
// bigger file (batch false).
type uploadUnit struct {
	files []*localFile
	bytes int64
	batch bool
}

// planUploads splits files into uploadUnits: every file of more than
// BatchFileMax bytes on its own, first (the longest uploads start first),
// then the others in batches of at most BatchMaxBytes and BatchMaxBlobs.
func planUploads(files []*localFile) []uploadUnit {
	var big, batches []uploadUnit
	var cur uploadUnit
	for _, f := range files {
		if f.size > BatchFileMax {
			big = append(big, uploadUnit{files: []*localFile{f}, bytes: f.size})
			continue
		}
		if len(cur.files) > 0 && (cur.bytes+f.size > BatchMaxBytes || len(cur.files) >= BatchMaxBlobs) {
			batches = append(batches, cur)
			cur = uploadUnit{}
		}
		cur.files = append(cur.files, f)
		cur.bytes += f.size
		cur.batch = true
	}
	if len(cur.files) > 0 {
		batches = append(batches, cur)
	}
	return append(big, batches...)
}

// uploadUnit uploads u, retrying once after a failure that a retry can
// fix; a batch goes file by file once the node is known not to take
// batches (noBatch, set here on the first refusal), and when every node
// refused it for a full disk (507), since a full node relays single
// uploads to the other owners but not batches.
func (c *Client) uploadUnit(ctx context.Context, u uploadUnit, noBatch *atomic.Bool) error {
	if !u.batch || noBatch.Load() {
		for _, f := range u.files {
			if err := c.uploadFile(ctx, f); err != nil {
				return fmt.Errorf("upload %s: %w", f.path, err)
			}
		}
		return nil
	}
	blobs := make([]BatchBlob, len(u.files))
	for i, f := range u.files {
		blobs[i] = BatchBlob{Hash: f.hash, Size: f.size, Open: func() (io.ReadCloser, error) { return os.Open(f.disk) }}
	}
	_, err := c.UploadBatch(ctx, blobs)
	if err != nil && retryable(ctx, err) && !errors.Is(err, ErrNoBatch) && !hasStatus(err, http.StatusInsufficientStorage) {
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return err
		}
		_, err = c.UploadBatch(ctx, blobs)
	}
	switch {
	case errors.Is(err, ErrNoBatch):
		noBatch.Store(true)
		u.batch = false
		return c.uploadUnit(ctx, u, noBatch)
	case hasStatus(err, http.StatusInsufficientStorage):
		// Every node listed is below its disk reserve: one file at a
		// time, a node relays each to the other owners.
		u.batch = false
		return c.uploadUnit(ctx, u, noBatch)
	}
	if err != nil {
		return fmt.Errorf("upload a batch of %d files (%s, ...): %w", len(u.files), u.files[0].path, err)
	}
	return nil
}

// hasStatus reports whether err is an API answer of status.
func hasStatus(err error, status int) bool {
	var ae *Error
	return errors.As(err, &ae) && ae.Status == status
}
