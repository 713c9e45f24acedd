package peer

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"
)

// Client is the client of the peer protocol. A Client is safe for
// concurrent use.
//
// Every call sends Key as HeaderClusterKey, and Version and the binary's
// highest feature level as HeaderVersion and HeaderFeatureLevel. Blob transfers (Push, Fetch,
// FetchCache, FetchSmall, Has) go through HTTP and are bounded by the ctx
// of each call; the client's own timeouts bound only connecting and the
// wait for an answer's header. The other calls go through RPC, whose
// answers may come only after long work on the peer (a repair pull, a
// scrub pass). A nil HTTP or RPC uses a client shared by the process with
// New's settings.
//
// With Health set, a call to a peer marked down fails at once with
// ErrDown, and a call that gets no answer marks its peer down (see
// Health); Join and Ping are never skipped.
type Client struct {
	HTTP   *http.Client
	RPC    *http.Client
	Key    string
	Health *Health
	// Version is the calling node's version, sent on every request with
	// the binary's highest feature level (HeaderVersion,
	// HeaderFeatureLevel).
	Version string
}

// Timeouts of New's clients.
const (
	dialTimeout           = 2 * time.Second
	responseHeaderTimeout = 10 * time.Second
	idleConnsPerHost      = 32
	rpcTimeout            = time.Minute
)

// New returns a Client that sends key. Its HTTP client dials with a 2 s
// timeout, waits at most 10 s for an answer's header (which a PUT gets only
// after the receiver fsynced the blob), uses no proxy from the environment
// (peer traffic stays inside the cluster) and keeps up to 32 idle
// connections per peer, since repair pushes many blobs to few peers at
// once; it has no overall timeout: bound each call with its ctx. Its RPC
// client gives each call a minute.
func New(key string) *Client {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     false,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   idleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: responseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
	return &Client{HTTP: &http.Client{Transport: tr}, RPC: &http.Client{Timeout: rpcTimeout}, Key: key}
}

// defaultClient serves Clients whose HTTP or RPC is nil.
var defaultClient = sync.OnceValue(func() *Client { return New("") })

// KeyOK reports whether r carries key as its cluster key. An empty key
// admits nothing. It takes constant time.
func KeyOK(r *http.Request, key string) bool {
	got := r.Header.Get(HeaderClusterKey)
	return key != "" && subtle.ConstantTimeCompare([]byte(got), []byte(key)) == 1
}

// do sends req with the cluster key through hc and returns the answer if it
// is 2xx, else an *Error (the body is read and closed). An error of the
// transport wraps ErrUnreachable; a peer marked down (Health) is not
// asked, and the error wraps ErrDown too.
func (c *Client) do(hc *http.Client, req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	health := c.Health
	if ctx.Value(unchecked{}) != nil {
		health = nil
	}
	if err := health.skip(req.URL.Host); err != nil {
		return nil, err
	}
	req.Header.Set(HeaderClusterKey, c.Key)
	req.Header.Set(HeaderFeatureLevel, strconv.Itoa(atoll.MaxFeatureLevel))
	if c.Version != "" {
		req.Header.Set(HeaderVersion, c.Version)
	}
	resp, err := hc.Do(req)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrUnreachable, err)
		if health != nil {
			health.Observe(ctx, req.URL.Scheme, req.URL.Host, err)
		}
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, readError(req, resp)
}

// idempotent marks req as safe to send twice (the net/http convention: an
// Idempotency-Key entry, here without a value, so nothing is sent). Its body
// must be replayable (GetBody, as http.NewRequest sets for a bytes.Reader).
// The transport then resends it on a new connection when the kept-alive one
// it picked turns out closed by the peer before any answer: a peer that
// restarted since the last call, or closed the idle connection just as it
// was reused. Without it such a call fails with EOF, an ErrUnreachable that
// Health takes for the peer being down, and the calls to a peer that is up
// are skipped until a probe answers. POST calls that only read, or that a
// repetition leaves unchanged, use it; PUT and GET are idempotent already.
func idempotent(req *http.Request) {
	req.Header["Idempotency-Key"] = nil
}

// blobs is the client of blob transfers.
func (c *Client) blobs() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultClient().HTTP
}

// rpc is the client of the other calls.
func (c *Client) rpc() *http.Client {
	if c.RPC != nil {
		return c.RPC
	}
	return defaultClient().RPC
}

// call sends body (nil: none) of contentType to path on the peer at
// baseURL and decodes the JSON answer into out (if not nil).
func (c *Client) call(ctx context.Context, method, baseURL, path string, body []byte, contentType string, out any) error {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint(baseURL, path), r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if idempotentPosts[path] {
		idempotent(req)
	}
	resp, err := c.do(c.rpc(), req)
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, req.URL, err)
	}
	return nil
}

// drainClose reads a little of what is left of an answer (so the connection
// can be reused) and closes it.
func drainClose(body io.ReadCloser) {
	io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	body.Close()
}
