package blobstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// The peer protocol moves blobs between nodes. blobstore owns its client
// (Peer) and its wire format; package node serves it, with handlers built on
// Export, Import, Present and ParseHasRequest. Every request carries the
// cluster's shared key in HeaderClusterKey; a node answers 403 without it.
//
//	PUT  {base}/v1/peer/blobs/{hash}   body: an Export, header HeaderBlob
//	     -> 201 (stored) or 200 (was stored already), PushResponse,
//	        sent only once the blob is fsynced (Import returned)
//	GET  {base}/v1/peer/blobs/{hash}
//	     -> 200, body: an Export, header HeaderBlob, Content-Length; 404 if
//	        the node does not hold the blob (it never fetches it elsewhere)
//	POST {base}/v1/peer/has            body: HasRequest, at most MaxHasHashes
//	     -> 200, HasResponse: the hashes held, with their sizes
//
// Errors are answered as {"error": "<message>"} with a 4xx/5xx status; Peer
// returns them as a *StatusError. An Import error wrapping ErrInvalidHash,
// ErrMalformed or ErrHashMismatch means the sender sent a bad request (400);
// ErrNoSpace, that the receiver's disk is full (507, which Push wraps in
// ErrNoSpace again); any other is the receiver's problem (500).
//
// A node's handlers, in full (writeJSON and writeError stand for whatever
// writes a JSON answer):
//
//	mux.HandleFunc("PUT "+blobstore.PeerBlobPath, func(w http.ResponseWriter, r *http.Request) {
//		hash := r.PathValue("hash")
//		status := http.StatusCreated
//		if store.Has(hash) {
//			status = http.StatusOK
//		}
//		info, err := store.Import(r.Context(), hash, r.Header.Get(blobstore.HeaderBlob), r.Body)
//		switch {
//		case errors.Is(err, blobstore.ErrInvalidHash), errors.Is(err, blobstore.ErrMalformed),
//			errors.Is(err, blobstore.ErrHashMismatch):
//			writeError(w, http.StatusBadRequest, err.Error())
//			return
//		case errors.Is(err, blobstore.ErrNoSpace):
//			writeError(w, http.StatusInsufficientStorage, err.Error())
//			return
//		case err != nil:
//			writeError(w, http.StatusInternalServerError, err.Error())
//			return
//		}
//		writeJSON(w, status, blobstore.PushResponse{Hash: info.Hash, Size: info.Size})
//	})
//	mux.HandleFunc("GET "+blobstore.PeerBlobPath, func(w http.ResponseWriter, r *http.Request) {
//		header, body, length, err := store.Export(r.PathValue("hash"))
//		switch {
//		case errors.Is(err, blobstore.ErrNotFound):
//			writeError(w, http.StatusNotFound, err.Error())
//			return
//		case errors.Is(err, blobstore.ErrInvalidHash):
//			writeError(w, http.StatusBadRequest, err.Error())
//			return
//		case err != nil:
//			writeError(w, http.StatusInternalServerError, err.Error())
//			return
//		}
//		defer body.Close()
//		w.Header().Set(blobstore.HeaderBlob, header)
//		w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
//		io.Copy(w, body)
//	})
//	mux.HandleFunc("POST "+blobstore.PeerHasPath, func(w http.ResponseWriter, r *http.Request) {
//		hashes, err := blobstore.ParseHasRequest(r.Body, blobstore.MaxHasHashes)
//		if err != nil {
//			writeError(w, http.StatusBadRequest, err.Error())
//			return
//		}
//		writeJSON(w, http.StatusOK, blobstore.HasResponse{Present: store.Present(hashes)})
//	})
const (
	// HeaderBlob carries a transfer header (see BlobHeader) on a PUT
	// request and a GET answer of PeerBlobPath.
	HeaderBlob = "X-Atoll-Blob"
	// HeaderClusterKey carries the cluster's shared key on every peer
	// request.
	HeaderClusterKey = "X-Atoll-Cluster-Key"
	// PeerBlobPath is the route of one blob, as a net/http pattern path
	// (PathValue("hash") is the blob's name).
	PeerBlobPath = "/v1/peer/blobs/{hash}"
	// PeerHasPath is the route that answers which blobs a node holds.
	PeerHasPath = "/v1/peer/has"
	// MaxHasHashes bounds the hashes of one HasRequest; Peer.Has splits
	// longer lists.
	MaxHasHashes = 10000
)

// HasRequest is the body of a POST to PeerHasPath.
type HasRequest struct {
	Hashes []string `json:"hashes"`
}

// HasResponse answers a HasRequest: the blobs among those asked for that the
// node holds, with their sizes (of the identity bytes).
type HasResponse struct {
	Present map[string]int64 `json:"present"`
}

// PushResponse answers a PUT to PeerBlobPath once the blob is durable.
type PushResponse struct {
	Hash string `json:"hash"`
	Size int64  `json:"size"`
}

// maxHasRequestBytes bounds the body of a HasRequest of max hashes: each
// hash takes 64 bytes, its quotes and a comma, plus room for white space.
func maxHasRequestBytes(maxHashes int) int64 { return int64(maxHashes)*80 + 1024 }

// ParseHasRequest reads a HasRequest from r and returns its hashes, in the
// order sent. It fails with an error wrapping ErrMalformed when the body is
// not exactly one HasRequest JSON object (unknown fields included), is
// bigger than maxHashes hashes can take, or lists more than maxHashes; and
// with ErrInvalidHash when a hash is not a valid name. It reads at most
// about 80 bytes per allowed hash from r.
func ParseHasRequest(r io.Reader, maxHashes int) ([]string, error) {
	limit := maxHasRequestBytes(maxHashes)
	lr := &io.LimitedReader{R: r, N: limit + 1}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	var req HasRequest
	err := dec.Decode(&req)
	if err == nil && dec.Decode(&struct{}{}) != io.EOF {
		err = errors.New("data after the request object")
	}
	if lr.N <= 0 {
		return nil, fmt.Errorf("has request: more than %d bytes: %w", limit, ErrMalformed)
	}
	if err != nil {
		return nil, fmt.Errorf("has request: %v: %w", err, ErrMalformed)
	}
	if len(req.Hashes) > maxHashes {
		return nil, fmt.Errorf("has request: %d hashes, at most %d allowed: %w", len(req.Hashes), maxHashes, ErrMalformed)
	}
	for _, h := range req.Hashes {
		if !validHash(h) {
			return nil, fmt.Errorf("has request: %.80q: %w", h, ErrInvalidHash)
		}
	}
	return req.Hashes, nil
}

// Present returns the blobs among hashes that the store holds, with their
// sizes: the Present field of a HasResponse. Invalid names are not held.
func (s *Store) Present(hashes []string) map[string]int64 {
	present := make(map[string]int64)
	for _, h := range hashes {
		if info, err := s.Stat(h); err == nil {
			present[h] = info.Size
		}
	}
	return present
}

// StatusError is a peer's non-2xx answer.
type StatusError struct {
	Method     string
	URL        string
	StatusCode int
	Message    string // the answer's {"error"} message, else the start of its body
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Peer is the client of the peer protocol. A nil HTTP uses a client shared
// by the process with NewPeer's settings. A Peer is safe for concurrent use.
//
// Every call sends Key as HeaderClusterKey. Transfers are bounded by the
// ctx of each call; the client's own timeouts bound only connecting and the
// wait for an answer's header.
type Peer struct {
	HTTP *http.Client
	Key  string
}

// Timeouts of NewPeer's client.
const (
	peerDialTimeout           = 2 * time.Second
	peerResponseHeaderTimeout = 10 * time.Second
	peerIdleConnsPerHost      = 32
)

// NewPeer returns a Peer that sends key, over a client of its own: dialing
// times out after 2 s, the wait for an answer's header (which a PUT gets
// only after the receiver fsynced the blob) after 10 s, and no proxy from
// the environment is used (peer traffic stays inside the cluster). Up to 32
// idle connections per peer are kept, since repair pushes many blobs to few
// peers at once. There is no overall timeout: bound each call with its ctx.
func NewPeer(key string) *Peer {
	dialer := &net.Dialer{Timeout: peerDialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     false,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   peerIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: peerResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
	return &Peer{HTTP: &http.Client{Transport: tr}, Key: key}
}

// defaultPeerClient serves Peers whose HTTP is nil.
var defaultPeerClient = sync.OnceValue(func() *http.Client { return NewPeer("").HTTP })

// blobURL returns the URL of a (valid) blob on the peer at baseURL.
func blobURL(baseURL, hash string) string {
	return strings.TrimSuffix(baseURL, "/") + strings.Replace(PeerBlobPath, "{hash}", hash, 1)
}

// do sends req with the cluster key and returns the answer if it is 2xx,
// else a *StatusError (the body is read and closed).
func (p *Peer) do(req *http.Request) (*http.Response, error) {
	req.Header.Set(HeaderClusterKey, p.Key)
	client := p.HTTP
	if client == nil {
		client = defaultPeerClient()
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	se := &StatusError{Method: req.Method, URL: req.URL.String(), StatusCode: resp.StatusCode}
	var msg struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &msg) == nil && msg.Error != "" {
		se.Message = msg.Error
	} else {
		se.Message = strings.ToValidUTF8(string(bytes.TrimSpace(b[:min(len(b), 200)])), "?")
	}
	return nil, se
}

// drainClose reads a little of what is left of an answer (so the connection
// can be reused) and closes it.
func drainClose(body io.ReadCloser) {
	io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	body.Close()
}

// Push sends a blob of store, with its variants, to the peer at baseURL
// (e.g. "http://10.0.0.2:9090"), and returns nil once the peer answered
// that the blob is durable there. A peer that holds the blob already
// answers success too (after reading the body). The error wraps ErrNotFound
// when store does not hold the blob, and is a *StatusError when the peer
// refuses it; when the peer's disk is full (507 Insufficient Storage) it
// wraps ErrNoSpace too.
func (p *Peer) Push(ctx context.Context, store *Store, baseURL, hash string) error {
	hdr, body, err := store.export(hash)
	if err != nil {
		return fmt.Errorf("push blob: %w", err)
	}
	header := hdr.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, blobURL(baseURL, hash), body)
	if err != nil {
		body.Close()
		return fmt.Errorf("push blob %s: %w", hash, err)
	}
	req.ContentLength = hdr.Length()
	req.Header.Set(HeaderBlob, header)
	req.Header.Set("Content-Type", "application/octet-stream")
	// Lets the transport resend on a kept-alive connection the peer closed.
	req.GetBody = func() (io.ReadCloser, error) {
		h, b, err := store.export(hash)
		if err != nil {
			return nil, err
		}
		if h.String() != header {
			b.Close()
			return nil, errors.New("blob changed on disk")
		}
		return b, nil
	}
	resp, err := p.do(req)
	if se := (*StatusError)(nil); errors.As(err, &se) && se.StatusCode == http.StatusInsufficientStorage {
		return fmt.Errorf("push blob %s to %s: %w: %w", hash, baseURL, ErrNoSpace, err)
	}
	if err != nil {
		return fmt.Errorf("push blob %s to %s: %w", hash, baseURL, err)
	}
	defer drainClose(resp.Body)
	var out PushResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil {
		return fmt.Errorf("push blob %s to %s: read answer: %w", hash, baseURL, err)
	}
	if out.Hash != hash || out.Size != hdr.Size {
		return fmt.Errorf("push blob %s to %s: peer answered %q of %d bytes, want %d bytes", hash, baseURL, out.Hash, out.Size, hdr.Size)
	}
	return nil
}

// Fetch copies a blob, with its variants, from the peer at baseURL into
// store and returns its Info; if store holds it already, Fetch returns its
// Info without asking the peer. The bytes are verified while they arrive
// (see Import): a peer that sends bytes not matching hash makes Fetch fail
// with an error wrapping ErrHashMismatch, and nothing is kept. A peer that
// does not hold the blob makes it fail with an error wrapping both
// ErrNotFound and the *StatusError.
func (p *Peer) Fetch(ctx context.Context, store *Store, baseURL, hash string) (Info, error) {
	return p.fetch(ctx, store, baseURL, hash, true)
}

// FetchCache is Fetch for a copy this node keeps only as a cache: the blob
// is verified alike but stored with ImportCache, without fsync before
// returning (DESIGN.md, I11).
func (p *Peer) FetchCache(ctx context.Context, store *Store, baseURL, hash string) (Info, error) {
	return p.fetch(ctx, store, baseURL, hash, false)
}

func (p *Peer) fetch(ctx context.Context, store *Store, baseURL, hash string, durable bool) (Info, error) {
	if !validHash(hash) {
		return Info{}, fmt.Errorf("fetch blob %q: %w", hash, ErrInvalidHash)
	}
	if info, err := store.Stat(hash); err == nil {
		return info, nil
	}
	resp, header, err := p.get(ctx, baseURL, hash)
	if err != nil {
		return Info{}, err
	}
	defer drainClose(resp.Body)
	info, err := store.importBlob(ctx, hash, header, resp.Body, durable)
	if err != nil {
		return Info{}, fmt.Errorf("fetch blob %s from %s: %w", hash, baseURL, err)
	}
	return info, nil
}

// get asks the peer at baseURL for a (valid) blob and returns its answer,
// whose body the caller closes, and its transfer header. The error wraps
// ErrNotFound when the peer does not hold the blob, and ErrMalformed when
// the answer's Content-Length contradicts the header.
func (p *Peer) get(ctx context.Context, baseURL, hash string) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, blobURL(baseURL, hash), nil)
	if err != nil {
		return nil, "", fmt.Errorf("fetch blob %s: %w", hash, err)
	}
	resp, err := p.do(req)
	if se := (*StatusError)(nil); errors.As(err, &se) && se.StatusCode == http.StatusNotFound {
		return nil, "", fmt.Errorf("fetch blob %s from %s: %w: %w", hash, baseURL, ErrNotFound, err)
	}
	if err != nil {
		return nil, "", fmt.Errorf("fetch blob %s from %s: %w", hash, baseURL, err)
	}
	header := resp.Header.Get(HeaderBlob)
	if h, err := ParseBlobHeader(header); err == nil && resp.ContentLength >= 0 && resp.ContentLength != h.Length() {
		drainClose(resp.Body)
		return nil, "", fmt.Errorf("fetch blob %s from %s: Content-Length %d, header %q says %d: %w", hash, baseURL, resp.ContentLength, header, h.Length(), ErrMalformed)
	}
	return resp, header, nil
}

// Has asks the peer at baseURL which of hashes it holds and returns them
// with their sizes. Lists longer than MaxHasHashes are sent in several
// requests; duplicates are asked once. An invalid hash fails the call with
// ErrInvalidHash before anything is sent.
func (p *Peer) Has(ctx context.Context, baseURL string, hashes []string) (map[string]int64, error) {
	asked := make(map[string]bool, len(hashes))
	unique := make([]string, 0, len(hashes))
	for _, h := range hashes {
		if !validHash(h) {
			return nil, fmt.Errorf("has blobs: %.80q: %w", h, ErrInvalidHash)
		}
		if !asked[h] {
			asked[h] = true
			unique = append(unique, h)
		}
	}
	present := make(map[string]int64)
	url := strings.TrimSuffix(baseURL, "/") + PeerHasPath
	for chunk := range slices.Chunk(unique, MaxHasHashes) {
		got, err := p.has(ctx, url, chunk)
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

func (p *Peer) has(ctx context.Context, url string, hashes []string) (map[string]int64, error) {
	body, err := json.Marshal(HasRequest{Hashes: hashes})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.do(req)
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
