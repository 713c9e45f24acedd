package peer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
)

// Exporter is the store a blob is pushed from or served from: a transfer
// of the blob (blobstore.Store.Export).
type Exporter interface {
	Export(hash string) (header string, body io.ReadCloser, length int64, err error)
}

// Receiver is the store fetched blobs go into (blobstore.Store).
type Receiver interface {
	Stat(hash string) (blobstore.Info, error)
	// Import stores a transfer durably; ImportCache as a cache copy;
	// ImportSmall keeps a small one in memory (see Client.FetchSmall).
	Import(ctx context.Context, hash, header string, body io.Reader) (blobstore.Info, error)
	ImportCache(ctx context.Context, hash, header string, body io.Reader) (blobstore.Info, error)
	ImportSmall(ctx context.Context, hash, header string, body io.Reader, maxSize int64) (blobstore.Info, *blobstore.Received, error)
}

var _ Receiver = (*blobstore.Store)(nil)
var _ Exporter = (*blobstore.Store)(nil)

// Push sends a blob of store, with its variants, to the peer at baseURL
// (e.g. "http://10.0.0.2:9090"), and returns nil once the peer answered
// that the blob is durable there. A peer that holds the blob already
// answers success too (after reading the body). The error wraps
// blobstore.ErrNotFound when store does not hold the blob, and is an
// *Error when the peer refuses it (matching blobstore.ErrNoSpace when its
// disk is full).
func (c *Client) Push(ctx context.Context, store Exporter, baseURL, hash string) error {
	return c.putTransfer(ctx, blobURL(baseURL, hash), hash, "push blob", store.Export)
}

// Fetch copies a blob, with its variants, from the peer at baseURL into
// store (Import: durable before it returns) and returns its Info; if store
// holds it already, Fetch returns its Info without asking the peer. The
// bytes are verified while they arrive: a peer that sends bytes not
// matching hash makes Fetch fail with an error wrapping
// blobstore.ErrHashMismatch, and nothing is kept. A peer that does not
// hold the blob makes it fail with an *Error matching
// blobstore.ErrNotFound.
func (c *Client) Fetch(ctx context.Context, store Receiver, baseURL, hash string) (blobstore.Info, error) {
	return c.fetch(ctx, store, baseURL, hash, store.Import)
}

// FetchCache is Fetch for a copy this node keeps only as a cache: the blob
// is verified alike but stored with ImportCache, without fsync before
// returning (blobstore DESIGN.md, I11).
func (c *Client) FetchCache(ctx context.Context, store Receiver, baseURL, hash string) (blobstore.Info, error) {
	return c.fetch(ctx, store, baseURL, hash, store.ImportCache)
}

type importFunc func(ctx context.Context, hash, header string, body io.Reader) (blobstore.Info, error)

func (c *Client) fetch(ctx context.Context, store Receiver, baseURL, hash string, save importFunc) (blobstore.Info, error) {
	info, resp, err := c.startFetch(ctx, store, baseURL, hash)
	if err != nil || resp == nil {
		return info, err
	}
	defer drainClose(resp.Body)
	info, err = save(ctx, hash, resp.Header.Get(HeaderBlob), resp.Body)
	if err != nil {
		return blobstore.Info{}, fmt.Errorf("fetch blob %s from %s: %w", hash, baseURL, err)
	}
	return info, nil
}

// FetchSmall is FetchCache for a blob its caller wants in memory at once:
// store.ImportSmall reads a blob of at most maxSize identity bytes into
// memory, checks them against hash and returns it as a Received without
// storing anything (the caller stores it, e.g. in the background, with
// Received.Store). A bigger blob is stored as FetchCache stores it and the
// Received is nil; so is one the store holds already, whose Info is
// returned without asking the peer. The errors are those of FetchCache.
func (c *Client) FetchSmall(ctx context.Context, store Receiver, baseURL, hash string, maxSize int64) (blobstore.Info, *blobstore.Received, error) {
	info, resp, err := c.startFetch(ctx, store, baseURL, hash)
	if err != nil || resp == nil {
		return info, nil, err
	}
	defer drainClose(resp.Body)
	info, rec, err := store.ImportSmall(ctx, hash, resp.Header.Get(HeaderBlob), resp.Body, maxSize)
	if err != nil {
		return blobstore.Info{}, nil, fmt.Errorf("fetch blob %s from %s: %w", hash, baseURL, err)
	}
	return info, rec, nil
}

// startFetch returns the Info of a blob store holds already, or else the
// peer's answer to a GET of it, whose body the caller closes. The error
// wraps blobstore.ErrInvalidHash for an invalid name, is an *Error when the
// peer does not hold the blob, and wraps blobstore.ErrMalformed when the
// answer's Content-Length contradicts its header.
func (c *Client) startFetch(ctx context.Context, store Receiver, baseURL, hash string) (blobstore.Info, *http.Response, error) {
	if !atoll.ValidHash(hash) {
		return blobstore.Info{}, nil, fmt.Errorf("fetch blob %q: %w", hash, blobstore.ErrInvalidHash)
	}
	if info, err := store.Stat(hash); err == nil {
		return info, nil, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, blobURL(baseURL, hash), nil)
	if err != nil {
		return blobstore.Info{}, nil, fmt.Errorf("fetch blob %s: %w", hash, err)
	}
	resp, err := c.do(c.blobs(), req)
	if err != nil {
		return blobstore.Info{}, nil, fmt.Errorf("fetch blob %s from %s: %w", hash, baseURL, err)
	}
	header := resp.Header.Get(HeaderBlob)
	if h, err := blobstore.ParseBlobHeader(header); err == nil && resp.ContentLength >= 0 && resp.ContentLength != h.Length() {
		drainClose(resp.Body)
		return blobstore.Info{}, nil, fmt.Errorf("fetch blob %s from %s: Content-Length %d, header %q says %d: %w", hash, baseURL, resp.ContentLength, header, h.Length(), blobstore.ErrMalformed)
	}
	return blobstore.Info{}, resp, nil
}

// Has asks the peer at baseURL which of hashes it holds and returns them
// with their sizes. Lists longer than MaxHasHashes are sent in several
// requests; duplicates are asked once. An invalid hash fails the call with
// blobstore.ErrInvalidHash before anything is sent.
func (c *Client) Has(ctx context.Context, baseURL string, hashes []string) (map[string]int64, error) {
	asked := make(map[string]bool, len(hashes))
	unique := make([]string, 0, len(hashes))
	for _, h := range hashes {
		if !atoll.ValidHash(h) {
			return nil, fmt.Errorf("has blobs: %.80q: %w", h, blobstore.ErrInvalidHash)
		}
		if !asked[h] {
			asked[h] = true
			unique = append(unique, h)
		}
	}
	present := make(map[string]int64)
	for chunk := range slices.Chunk(unique, MaxHasHashes) {
		got, err := c.has(ctx, endpoint(baseURL, HasPath), chunk)
		if err != nil {
			return nil, fmt.Errorf("has blobs at %s: %w", baseURL, err)
		}
		for h, size := range got {
			if asked[h] && size >= 0 {
				present[h] = size
			}
		}
	}
	return present, nil
}

func (c *Client) has(ctx context.Context, url string, hashes []string) (map[string]int64, error) {
	body, err := json.Marshal(HasRequest{Hashes: hashes})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	idempotent(req) // a question: asking twice is harmless
	resp, err := c.do(c.blobs(), req)
	if err != nil {
		return nil, err
	}
	defer drainClose(resp.Body)
	// An answer lists at most the hashes asked, each with a size.
	limit := int64(len(hashes))*128 + 1024
	var out HasResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, limit)).Decode(&out); err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	return out.Present, nil
}
