package client

import (
	"context"
	"net/url"

	"github.com/atoll-hosting/atoll"
)

// JoinNode adds a node to the cluster (POST /v1/nodes).
func (c *Client) JoinNode(ctx context.Context, req atoll.JoinRequest) (atoll.NodeStatus, error) {
	var out atoll.NodeStatus
	err := c.doJSON(ctx, "POST", "/v1/nodes", req, &out)
	return out, err
}

// DrainNode marks a node draining, which moves its blobs to their new
// owners, and returns the drain's progress.
func (c *Client) DrainNode(ctx context.Context, id string) (atoll.DrainStatus, error) {
	var out atoll.DrainStatus
	err := c.doJSON(ctx, "POST", "/v1/nodes/"+url.PathEscape(id)+"/drain", nil, &out)
	return out, err
}

// DrainStatus returns a draining node's progress.
func (c *Client) DrainStatus(ctx context.Context, id string) (atoll.DrainStatus, error) {
	var out atoll.DrainStatus
	err := c.doJSON(ctx, "GET", "/v1/nodes/"+url.PathEscape(id)+"/drain", nil, &out)
	return out, err
}

// RemoveNode takes a node out of the cluster. Without force the cluster
// refuses while the node may hold the last copy of a referenced blob.
func (c *Client) RemoveNode(ctx context.Context, id string, force bool) (atoll.NodeStatus, error) {
	path := "/v1/nodes/" + url.PathEscape(id)
	if force {
		path += "?force=true"
	}
	var out atoll.NodeStatus
	err := c.doJSON(ctx, "DELETE", path, nil, &out)
	return out, err
}

// Repair runs a repair census on the leader now and returns its report.
func (c *Client) Repair(ctx context.Context) (atoll.RepairReport, error) {
	var out atoll.RepairReport
	err := c.doJSON(ctx, "POST", "/v1/repair", nil, &out)
	return out, err
}
