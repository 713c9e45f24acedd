package client

import (
	"context"
	"net/url"

	"github.com/atoll-hosting/atoll"
)

// ScrubNode starts a scrub pass on node id now (or joins the one it runs on
// request already) and returns its status: final if the pass finished
// within the call, else Running with the progress so far (poll ScrubStatus).
func (c *Client) ScrubNode(ctx context.Context, id string) (atoll.ScrubStatus, error) {
	var out atoll.ScrubStatus
	err := c.doJSON(ctx, "POST", "/v1/nodes/"+url.PathEscape(id)+"/scrub", nil, &out)
	return out, err
}

// ScrubStatus returns node id's running or last scrub pass.
func (c *Client) ScrubStatus(ctx context.Context, id string) (atoll.ScrubStatus, error) {
	var out atoll.ScrubStatus
	err := c.doJSON(ctx, "GET", "/v1/nodes/"+url.PathEscape(id)+"/scrub", nil, &out)
	return out, err
}
