package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/raft"
)

// Apply forwards cmd to the leader at baseURL and returns the log index to
// wait for. A rejection by the leader's state machine, or a leader that no
// longer leads, comes back wrapping the sentinel it had there (KindOf:
// atoll.ErrNotFound, raft.ErrNotLeader...), with the leader's message; an
// answer without a kind is an *Error; no answer, ErrUnreachable.
func (c *Client) Apply(ctx context.Context, baseURL string, cmd raft.Command) (uint64, error) {
	data, err := raft.Encode(cmd)
	if err != nil {
		return 0, err
	}
	var out ApplyResponse
	err = c.call(ctx, http.MethodPost, baseURL, ApplyPath, data, "application/octet-stream", &out)
	var e *Error
	if errors.As(err, &e) {
		if s, ok := kinds[e.Kind]; ok {
			return 0, fmt.Errorf("%w: %s", s, e.Message)
		}
	}
	return out.Index, err
}

// Stats asks the node at baseURL what it says of itself.
func (c *Client) Stats(ctx context.Context, baseURL string) (Stats, error) {
	var st Stats
	err := c.call(ctx, http.MethodGet, baseURL, StatsPath, nil, "", &st)
	return st, err
}

// Member asks the node at baseURL whether its replicated state lists
// node id as a member (MemberResponse). A node from before this call
// answers 404 (an *Error matching atoll.ErrNotFound).
func (c *Client) Member(ctx context.Context, baseURL, id string) (MemberResponse, error) {
	var out MemberResponse
	err := c.call(ctx, http.MethodGet, baseURL, strings.Replace(MemberPath, "{id}", url.PathEscape(id), 1), nil, "", &out)
	return out, err
}

// SiteCounts returns the edge counters of site on the node at baseURL.
func (c *Client) SiteCounts(ctx context.Context, baseURL, site string) (atoll.SiteCounts, error) {
	var out atoll.SiteCounts
	err := c.call(ctx, http.MethodGet, baseURL, SiteStatsPath+"?site="+url.QueryEscape(site), nil, "", &out)
	return out, err
}

// Pull has the node at baseURL fetch hashes (at most MaxHasHashes) from
// their holders and answers how many arrived.
func (c *Client) Pull(ctx context.Context, baseURL string, hashes []string) (FetchResponse, error) {
	var out FetchResponse
	err := c.callJSON(ctx, http.MethodPost, baseURL, FetchPath, HashList{Hashes: hashes}, &out)
	return out, err
}

// Verify asks the node at baseURL to check its copies of hashes now: it
// sent this node bytes that did not match them. The node checks in the
// background; Verify returns once it accepted.
func (c *Client) Verify(ctx context.Context, baseURL string, hashes []string) error {
	return c.callJSON(ctx, http.MethodPost, baseURL, VerifyPath, HashList{Hashes: hashes}, nil)
}

// Scrub relays a scrub request to the node at baseURL: with method POST it
// starts a pass and waits up to wait for its end, with GET it reports the
// running or last pass.
func (c *Client) Scrub(ctx context.Context, method, baseURL string, wait time.Duration) (atoll.ScrubStatus, error) {
	var st atoll.ScrubStatus
	err := c.call(ctx, method, baseURL, ScrubPath+"?wait="+wait.String(), nil, "", &st)
	return st, err
}

// Join asks the cluster at baseURL (any member's API) to add the node
// req describes, authenticated by the cluster key. One attempt: callers
// retry with Backoff.Retry while the cluster elects (a 503) or cannot be
// reached.
func (c *Client) Join(ctx context.Context, baseURL string, req atoll.JoinRequest) error {
	return c.join(ctx, baseURL, JoinPath, req, nil)
}

// JoinAssigned is Join for a new edge that can be fed
// (POST JoinPath?assign=1): the leader makes it a Raft non-voter or a fed
// edge, and the answer says which (a Feeder, with its API address). A
// leader that does not know the query ignores it and adds a non-voter.
func (c *Client) JoinAssigned(ctx context.Context, baseURL string, req atoll.JoinRequest) (atoll.JoinResponse, error) {
	var out atoll.JoinResponse
	err := c.join(ctx, baseURL, JoinPath+"?assign=1", req, &out)
	return out, err
}

func (c *Client) join(ctx context.Context, baseURL, path string, req atoll.JoinRequest, out any) error {
	// Not a member yet: Health tracks the cluster's members only.
	ctx = context.WithValue(ctx, unchecked{}, true)
	return c.callJSON(ctx, http.MethodPost, baseURL, path, req, out)
}

// idempotentPosts are the POST paths of call that a repetition leaves as
// one call would (see idempotent): a pull fetches what is still missing, a
// verify checks copies again. Apply and Join are not among them.
var idempotentPosts = map[string]bool{FetchPath: true, VerifyPath: true}

// callJSON is call with in encoded as a JSON body.
func (c *Client) callJSON(ctx context.Context, method, baseURL, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.call(ctx, method, baseURL, path, body, "application/json", out)
}
