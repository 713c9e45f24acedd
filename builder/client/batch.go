package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/internal/countio"
	"github.com/atoll-hosting/atoll/internal/osfile"
)

// Batch bounds of DeployDir's uploads: a file of at most BatchFileMax
// bytes travels in a batch (POST /v1/blobs) of at most BatchMaxBytes and
// BatchMaxBlobs, well within the server's documented limits; a bigger
// file has its own PUT. A batch is streamed from the files, never held in
// memory: it is sent again (to the next node, or once more after a
// failure) by opening them anew.
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
	// closes it. It may be called more than once (a batch sent again).
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
//
// The body is streamed (chunked) from each blob's Open (batchBody): a blob
// that ends before its Size fails the request, and nothing of the batch is
// stored.
func (c *Client) UploadBatch(ctx context.Context, blobs []BatchBlob) (atoll.BlobBatchResponse, error) {
	open := func() (io.ReadCloser, error) { return &batchBody{blobs: blobs}, nil }
	body, _ := open()
	req, err := c.newRequest(ctx, "POST", "/v1/blobs", body)
	if err != nil {
		body.Close()
		return atoll.BlobBatchResponse{}, err
	}
	req.GetBody = open
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

// batchChunk is the size of the chunks a batch is sent in: a few system
// calls per chunk (net/http flushes each), 512 KiB of memory per batch in
// flight.
const batchChunk = 512 << 10

// batchBody is the body of one UploadBatch request: the records of blobs,
// each read from its Open as the request is sent. net/http's HTTP/1.1
// transport sends a body through its WriteTo, which reads the files into
// a batchChunk buffer and writes a full chunk at a time (2,750 writes of
// 32 KiB for an 82 MB deploy through a pipe and io.Copy's buffer became
// 160). Read, for any other reader (HTTP/2), streams the same bytes
// through a pipe fed by a goroutine, started by the first Read.
type batchBody struct {
	blobs []BatchBlob
	pipe  *io.PipeReader
}

func (b *batchBody) WriteTo(w io.Writer) (int64, error) {
	if b.pipe != nil { // already read from: go on where the reader is
		return io.Copy(w, b.pipe)
	}
	cw := &countio.Writer{W: w}
	err := b.write(cw)
	return cw.N, err
}

func (b *batchBody) Read(p []byte) (int, error) {
	if b.pipe == nil {
		pr, pw := io.Pipe()
		b.pipe = pr
		go func() { pw.CloseWithError(b.write(pw)) }()
	}
	return b.pipe.Read(p)
}

// write writes the batch to w in batchChunk writes.
func (b *batchBody) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, batchChunk)
	if err := writeBatch(bw, b.blobs); err != nil {
		return err
	}
	return bw.Flush()
}

// Close stops the pipe's goroutine, if Read started it.
func (b *batchBody) Close() error {
	if b.pipe != nil {
		return b.pipe.Close()
	}
	return nil
}

// writeBatch writes the records of blobs to w, each read from its Open.
func writeBatch(w io.Writer, blobs []BatchBlob) error {
	for _, b := range blobs {
		r, err := b.Open()
		if err != nil {
			return err
		}
		err = atoll.WriteBlobRecord(w, b.Hash, b.Size, r)
		r.Close()
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("blob %s: shorter than its %d bytes: was the file changed during upload?", b.Hash, b.Size)
		}
		if err != nil {
			return err
		}
	}
	return nil
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
		blobs[i] = BatchBlob{Hash: f.hash, Size: f.size, Open: func() (io.ReadCloser, error) { return osfile.Open(f.disk) }}
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
