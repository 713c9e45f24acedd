package client

import (
	"context"
	"net/url"

	"github.com/atoll-hosting/atoll"
)

// CreateToken creates a deploy token scoped to site, with an optional name
// saying what it is for. The answer's Token is the secret: it is shown this
// once, the cluster keeps only its hash. Needs the admin token.
func (c *Client) CreateToken(ctx context.Context, site, name string) (atoll.CreatedToken, error) {
	var t atoll.CreatedToken
	err := c.doJSON(ctx, "POST", "/v1/tokens", atoll.CreateTokenRequest{Site: site, Name: name}, &t)
	return t, err
}

// Tokens lists the deploy tokens, by id, without their secrets. Needs the
// admin token.
func (c *Client) Tokens(ctx context.Context) ([]atoll.TokenInfo, error) {
	var list atoll.TokenList
	err := c.doJSON(ctx, "GET", "/v1/tokens", nil, &list)
	return list.Tokens, err
}

// RevokeToken deletes a deploy token: requests carrying it are refused
// from then on. Needs the admin token.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.doJSON(ctx, "DELETE", "/v1/tokens/"+url.PathEscape(id), nil, nil)
}

// RotateAdminToken makes token the cluster's admin token: every node
// refuses the one this client holds once it has applied the change (this
// client keeps sending the old one: make another with the new token).
// Needs the admin token.
func (c *Client) RotateAdminToken(ctx context.Context, token string) error {
	return c.doJSON(ctx, "PUT", "/v1/admin-token", atoll.AdminTokenRequest{Token: token}, nil)
}
