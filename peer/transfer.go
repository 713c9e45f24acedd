package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/atoll-hosting/atoll/blobstore"
)

// exportFunc opens what a PUT of a blob transfer sends: its HeaderBlob
// value, a body, and the body's length (blobstore.Store.Export,
// ExportVariants).
type exportFunc func(hash string) (header string, body io.ReadCloser, length int64, err error)

// putTransfer PUTs what export gives of blob hash to url, and returns nil
// once the peer answered PushResponse for the blob and its size. what
// names the call in errors ("push blob", "push variants of blob").
func (c *Client) putTransfer(ctx context.Context, url, hash, what string, export exportFunc) error {
	header, body, length, err := export(hash)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	hdr, err := blobstore.ParseBlobHeader(header)
	if err != nil {
		body.Close()
		return fmt.Errorf("%s %s: %w", what, hash, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, body)
	if err != nil {
		body.Close()
		return fmt.Errorf("%s %s: %w", what, hash, err)
	}
	req.ContentLength = length
	req.Header.Set(HeaderBlob, header)
	req.Header.Set("Content-Type", "application/octet-stream")
	// Lets the transport resend on a kept-alive connection the peer closed.
	req.GetBody = func() (io.ReadCloser, error) {
		h, b, _, err := export(hash)
		if err != nil {
			return nil, err
		}
		if h != header {
			b.Close()
			return nil, errors.New("blob changed on disk")
		}
		return b, nil
	}
	resp, err := c.do(c.blobs(), req)
	if err != nil {
		return fmt.Errorf("%s %s to %s: %w", what, hash, url, err)
	}
	defer drainClose(resp.Body)
	var out PushResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil {
		return fmt.Errorf("%s %s to %s: read answer: %w", what, hash, url, err)
	}
	if out.Hash != hash || out.Size != hdr.Size {
		return fmt.Errorf("%s %s to %s: peer answered %q of %d bytes, want %d bytes", what, hash, url, out.Hash, out.Size, hdr.Size)
	}
	return nil
}
