package client

import (
	"context"
	"net/url"

	"github.com/atoll-hosting/atoll/builder"
)

// CreateToken creates a deploy token scoped to site, with an optional name
// saying what it is for. The answer's Token is the secret: it is shown this
// once, the cluster keeps only its hash. Needs the admin token.
func (c *Client) CreateToken(ctx context.Context, site, name string) (builder.CreatedToken, error) {
	var t builder.CreatedToken
	err := c.doJSON(ctx, "POST", "/v1/tokens", builder.CreateTokenRequest{Site: site, Name: name}, &t)
	return t, err
}

// Tokens lists the deploy tokens, by id, without their secrets. Needs the
// admin token.
func (c *Client) Tokens(ctx context.Context) ([]builder.TokenInfo, error) {
	var list builder.TokenList
	err := c.doJSON(ctx, "GET", "/v1/tokens", nil, &list)
	return list.Tokens, err
}

// RevokeToken deletes a deploy token: requests carrying it are refused
// from then on. Needs the admin token.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.doJSON(ctx, "DELETE", "/v1/tokens/"+url.PathEscape(id), nil, nil)
}
