package serve

import (
	"context"
	"io"
)

// SectionBlobs is implemented by Blobs that may answer a range of a blob
// without a file to seek in: a node whose disk is full streams a big blob
// it does not hold from another node. The Handler asks OpenSection before
// it opens a file for a 206; false means "open it as usual". The body
// holds exactly length bytes, from offset start of the identity bytes;
// the Handler closes it. A body that fails before its end (e.g. the bytes
// did not match the blob's hash) ends the answer short, which the visitor
// sees as a failed download, never as a good one.
type SectionBlobs interface {
	OpenSection(ctx context.Context, hash string, start, length int64) (body io.ReadCloser, ok bool, err error)
}

// openSection asks h.blobs for bytes rng of blob hash when it can stream
// them; ok false means open its file.
func (h *Handler) openSection(ctx context.Context, hash string, rng byteRange) (io.ReadCloser, bool, error) {
	sb, ok := h.blobs.(SectionBlobs)
	if !ok {
		return nil, false, nil
	}
	return sb.OpenSection(ctx, hash, rng.start, rng.length)
}
