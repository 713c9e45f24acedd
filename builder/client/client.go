package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/atoll-hosting/atoll"
)

// Client calls a cluster's API through one of its nodes. Its fields may be
// changed before the first call; it is safe for concurrent use afterwards.
//
// When a node cannot be reached (the connection is refused or times out)
// or answers 507 (its disk is full), a call is tried on the next of
// Endpoints, and the client sticks to the first one that answers
// otherwise. Only calls whose body can be sent again (JSON, bytes, files)
// move on; a streamed upload fails and its caller retries it.
type Client struct {
	// BaseURL is the first node's API address, e.g. "http://127.0.0.1:9090".
	BaseURL string
	// Endpoints are the API addresses of the nodes to try, BaseURL first.
	Endpoints []string
	// Token is sent as "Authorization: Bearer <Token>".
	Token string
	// HTTP makes the requests. New sets one without an overall timeout
	// (uploads may take long; bound calls with ctx) but with dial, TLS and
	// response-header timeouts, so a dead node fails fast.
	HTTP *http.Client
	// UserAgent is sent with every request.
	UserAgent string

	current atomic.Int64 // index in Endpoints of the node that answered last
}

func (c *Client) endpoints() []string {
	if len(c.Endpoints) == 0 {
		return []string{c.BaseURL}
	}
	return c.Endpoints
}

func (c *Client) endpoint(i int) string {
	eps := c.endpoints()
	return eps[i%len(eps)]
}

// send sends req to the current node, moving on to the next endpoints
// while nodes cannot be reached or answer that their disk is full (507:
// another node may have room, and a full node forwards nothing).
func (c *Client) send(req *http.Request) (*http.Response, error) {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	eps := c.endpoints()
	start := int(c.current.Load())
	res, err := hc.Do(req)
	for i := 1; moveOn(res, err) && i < len(eps); i++ {
		if req.Body != nil && req.GetBody == nil {
			break // a stream cannot be sent twice
		}
		if res != nil {
			io.Copy(io.Discard, io.LimitReader(res.Body, maxErrorBody))
			res.Body.Close()
		}
		next := (start + i) % len(eps)
		u, perr := url.Parse(eps[next])
		if perr != nil {
			return nil, fmt.Errorf("endpoint %q: %w", eps[next], perr)
		}
		r := req.Clone(req.Context())
		r.URL.Scheme, r.URL.Host, r.Host = u.Scheme, u.Host, ""
		if req.GetBody != nil {
			if r.Body, perr = req.GetBody(); perr != nil {
				return nil, perr
			}
		}
		if res, err = hc.Do(r); !moveOn(res, err) {
			c.current.Store(int64(next))
		}
	}
	return res, err
}

// moveOn reports whether a call should be tried on the next node: this
// one could not be reached, or its disk is full.
func moveOn(res *http.Response, err error) bool {
	if err != nil {
		return unreachable(err)
	}
	return res.StatusCode == http.StatusInsufficientStorage
}

// unreachable reports whether err means the node could not be reached at
// all (nothing was sent), as opposed to a failure mid-request.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// New returns a Client using token for the API at baseURL, which may list
// several nodes separated by commas ("http://a:9090,http://b:9090"); a
// trailing slash is ignored.
func New(baseURL, token string) *Client {
	var endpoints []string
	for _, u := range strings.Split(baseURL, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			endpoints = append(endpoints, u)
		}
	}
	if len(endpoints) == 0 {
		endpoints = []string{""}
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 10 * time.Minute, // a big tar is checked and stored before the answer
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   32,
		ForceAttemptHTTP2:     true,
	}
	return &Client{
		BaseURL:   endpoints[0],
		Endpoints: endpoints,
		Token:     token,
		HTTP:      &http.Client{Transport: tr},
		UserAgent: "atoll-client",
	}
}

// Error is a non-2xx answer of the API.
type Error struct {
	Status  int      // HTTP status code
	Message string   // the API's "error" message, or the status text
	Missing []string // blobs a finalize or publish still needs (409)
}

// Error returns one line: the message and the status.
func (e *Error) Error() string {
	msg := e.Message
	if len(e.Missing) > 0 {
		msg += fmt.Sprintf(" (%d missing blobs)", len(e.Missing))
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

// CreateSite creates a site with optional custom domains. retain 0 keeps the
// default number of deploys for rollback.
func (c *Client) CreateSite(ctx context.Context, name string, domains []string, retain int) (atoll.Site, error) {
	var site atoll.Site
	err := c.doJSON(ctx, "POST", "/v1/sites", atoll.CreateSiteRequest{Name: name, Domains: domains, Retain: retain}, &site)
	return site, err
}

// Sites lists every site, by name.
func (c *Client) Sites(ctx context.Context) ([]atoll.Site, error) {
	var list atoll.SiteList
	err := c.doJSON(ctx, "GET", "/v1/sites", nil, &list)
	return list.Sites, err
}

// Site returns one site.
func (c *Client) Site(ctx context.Context, name string) (atoll.Site, error) {
	var site atoll.Site
	err := c.doJSON(ctx, "GET", "/v1/sites/"+url.PathEscape(name), nil, &site)
	return site, err
}

// LockSite locks (pins its live deploy; publishes refused) or unlocks a
// site, and returns it.
func (c *Client) LockSite(ctx context.Context, name string, locked bool) (atoll.Site, error) {
	method := "PUT"
	if !locked {
		method = "DELETE"
	}
	var site atoll.Site
	err := c.doJSON(ctx, method, "/v1/sites/"+url.PathEscape(name)+"/lock", nil, &site)
	return site, err
}

// UpdateSite changes a site's settings: domains replaces its custom domains
// unless nil (an empty, non-nil slice removes them all); retain changes its
// retention unless 0.
func (c *Client) UpdateSite(ctx context.Context, name string, domains []string, retain int) (atoll.Site, error) {
	var req atoll.UpdateSiteRequest
	if domains != nil {
		req.Domains = &domains
	}
	if retain != 0 {
		req.Retain = &retain
	}
	return c.PatchSite(ctx, name, req)
}

// PatchSite changes the settings req gives of a site, among them its own
// limits (admin only), and returns the site as updated.
func (c *Client) PatchSite(ctx context.Context, name string, req atoll.UpdateSiteRequest) (atoll.Site, error) {
	var site atoll.Site
	err := c.doJSON(ctx, "PATCH", "/v1/sites/"+url.PathEscape(name), req, &site)
	return site, err
}

// DeleteSite deletes a site with its deploys.
func (c *Client) DeleteSite(ctx context.Context, name string) error {
	return c.doJSON(ctx, "DELETE", "/v1/sites/"+url.PathEscape(name), nil, nil)
}

// CreateDeploy starts a digest-based deploy of files (path -> SHA-256 hex).
// The answer's Required lists the blobs to upload with UploadBlob before
// Finalize or Publish.
func (c *Client) CreateDeploy(ctx context.Context, site string, files map[string]string) (atoll.DeployResponse, error) {
	req, err := json.Marshal(atoll.CreateDeployRequest{Files: files})
	if err != nil {
		return atoll.DeployResponse{}, fmt.Errorf("encode request: %w", err)
	}
	return c.createDeploy(ctx, site, req, "")
}

// createDeploy is CreateDeploy with a deploy message ("" for none) and
// the request encoded already (atoll.CreateDeployRequest).
func (c *Client) createDeploy(ctx context.Context, site string, req []byte, message string) (atoll.DeployResponse, error) {
	var d atoll.DeployResponse
	p := "/v1/sites/" + url.PathEscape(site) + "/deploys"
	if message != "" {
		p += "?message=" + url.QueryEscape(message)
	}
	err := c.doEncoded(ctx, "POST", p, req, &d)
	return d, err
}

// UploadBlob stores size bytes read from r as the blob hash. The server
// refuses content that does not hash to hash. r is not closed. When r is an
// io.ReadSeeker (a file), the upload moves on to the next node listed when
// the current one cannot be reached, as JSON calls do.
func (c *Client) UploadBlob(ctx context.Context, hash string, r io.Reader, size int64) (atoll.BlobResponse, error) {
	req, err := c.newRequest(ctx, "PUT", "/v1/blobs/"+url.PathEscape(hash), io.NopCloser(r))
	if err != nil {
		return atoll.BlobResponse{}, err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	} else if rs, ok := r.(io.ReadSeeker); ok {
		// A file can be sent again: to the next node when this one
		// cannot be reached (send), or on a fresh connection.
		if start, err := rs.Seek(0, io.SeekCurrent); err == nil {
			req.GetBody = func() (io.ReadCloser, error) {
				if _, err := rs.Seek(start, io.SeekStart); err != nil {
					return nil, err
				}
				return io.NopCloser(rs), nil
			}
		}
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	var out atoll.BlobResponse
	err = c.do(req, &out)
	return out, err
}

// Finalize marks a deploy ready once all its blobs are stored; an *Error
// with Status 409 lists the Missing ones.
func (c *Client) Finalize(ctx context.Context, id string) (atoll.DeployResponse, error) {
	var d atoll.DeployResponse
	err := c.doJSON(ctx, "POST", "/v1/deploys/"+url.PathEscape(id)+"/finalize", nil, &d)
	return d, err
}

// Publish makes a deploy its site's live one. Publishing an older deploy is
// a rollback.
func (c *Client) Publish(ctx context.Context, id string) (atoll.DeployResponse, error) {
	var d atoll.DeployResponse
	err := c.doJSON(ctx, "POST", "/v1/deploys/"+url.PathEscape(id)+"/publish", nil, &d)
	return d, err
}

// Rollback publishes deploy id even though it is older than the live one
// (Publish refuses that, 409, to keep a late build from replacing a newer
// one).
func (c *Client) Rollback(ctx context.Context, id string) (atoll.DeployResponse, error) {
	var d atoll.DeployResponse
	err := c.doJSON(ctx, "POST", "/v1/deploys/"+url.PathEscape(id)+"/publish?rollback=true", nil, &d)
	return d, err
}

// Deploy returns one deploy.
func (c *Client) Deploy(ctx context.Context, id string) (atoll.DeployResponse, error) {
	var d atoll.DeployResponse
	err := c.doJSON(ctx, "GET", "/v1/deploys/"+url.PathEscape(id), nil, &d)
	return d, err
}

// Deploys lists a site's retained deploys, newest first.
func (c *Client) Deploys(ctx context.Context, site string) ([]atoll.DeployResponse, error) {
	var list atoll.DeployList
	err := c.doJSON(ctx, "GET", "/v1/sites/"+url.PathEscape(site)+"/deploys", nil, &list)
	return list.Deploys, err
}

// UploadTar deploys a whole site in one request: r is a tar archive
// (gzip-compressed if gzipped) of the site's files relative to its root. The
// deploy is ready when this returns, and live if publish is set.
func (c *Client) UploadTar(ctx context.Context, site string, r io.Reader, gzipped, publish bool) (atoll.DeployResponse, error) {
	path := "/v1/sites/" + url.PathEscape(site) + "/deploys?publish=" + strconv.FormatBool(publish)
	req, err := c.newRequest(ctx, "POST", path, io.NopCloser(r))
	if err != nil {
		return atoll.DeployResponse{}, err
	}
	if gzipped {
		req.Header.Set("Content-Type", "application/gzip")
	} else {
		req.Header.Set("Content-Type", "application/x-tar")
	}
	var d atoll.DeployResponse
	err = c.do(req, &d)
	return d, err
}

// Status returns the answering node's view of the cluster.
func (c *Client) Status(ctx context.Context) (atoll.Status, error) {
	var st atoll.Status
	err := c.doJSON(ctx, "GET", "/v1/status", nil, &st)
	return st, err
}

// SiteStats returns a site's edge counters summed across the nodes.
func (c *Client) SiteStats(ctx context.Context, site string) (atoll.SiteStats, error) {
	var st atoll.SiteStats
	err := c.doJSON(ctx, "GET", "/v1/sites/"+url.PathEscape(site)+"/stats", nil, &st)
	return st, err
}

// Nodes returns the node table.
func (c *Client) Nodes(ctx context.Context) ([]atoll.NodeStatus, error) {
	var list atoll.NodeList
	err := c.doJSON(ctx, "GET", "/v1/nodes", nil, &list)
	return list.Nodes, err
}

// doJSON sends in (if not nil) as JSON and decodes the answer into out (if
// not nil).
func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	if in == nil {
		return c.doEncoded(ctx, method, path, nil, out)
	}
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	return c.doEncoded(ctx, method, path, b, out)
}

// doEncoded is doJSON with the request already encoded (nil: no body).
func (c *Client) doEncoded(ctx context.Context, method, path string, in []byte, out any) error {
	var body io.Reader
	if in != nil {
		body = bytes.NewReader(in)
	}
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.do(req, out)
}

func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(int(c.current.Load()))+path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	return req, nil
}

// maxErrorBody bounds how much of a failed answer is read.
const maxErrorBody = 1 << 20

func (c *Client) do(req *http.Request, out any) error {
	res, err := c.send(req)
	if err != nil {
		// *url.Error already reads "Method "URL": cause".
		return err
	}
	defer res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return decodeError(res)
	}
	if out == nil || res.StatusCode == http.StatusNoContent {
		io.Copy(io.Discard, io.LimitReader(res.Body, maxErrorBody)) // keep the connection reusable
		return nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// decodeError turns a failed answer into an *Error, also when the body is
// not the API's JSON (a proxy's HTML page, a plain-text 404).
func decodeError(res *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	e := &Error{Status: res.StatusCode}
	var wire atoll.ErrorResponse
	if json.Unmarshal(body, &wire) == nil && wire.Error != "" {
		e.Message, e.Missing = wire.Error, wire.Missing
		return e
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
	if len(line) > 200 || strings.HasPrefix(line, "<") {
		line = ""
	}
	if line == "" {
		line = http.StatusText(res.StatusCode)
	}
	e.Message = line
	return e
}

// Route asks what the edge does for request path p (a query string
// included) in deploy id, per its _redirects and _headers.
func (c *Client) Route(ctx context.Context, id, p string) (atoll.RouteResponse, error) {
	var r atoll.RouteResponse
	err := c.doJSON(ctx, "GET", "/v1/deploys/"+url.PathEscape(id)+"/route?path="+url.QueryEscape(p), nil, &r)
	return r, err
}
