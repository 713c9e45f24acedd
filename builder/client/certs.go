package client

import (
	"context"
	"net/url"

	"github.com/atoll-hosting/atoll"
)

// PutCert stores the TLS certificate of one of a site's custom domains:
// certPEM is the chain (leaf first), keyPEM the leaf's private key. Every
// edge serves it for that domain (SNI) once the cluster has applied it.
// Needs the admin token.
func (c *Client) PutCert(ctx context.Context, site, domain, certPEM, keyPEM string) (atoll.CertInfo, error) {
	var info atoll.CertInfo
	err := c.doJSON(ctx, "PUT", "/v1/sites/"+url.PathEscape(site)+"/certs/"+url.PathEscape(domain),
		atoll.PutCertRequest{Cert: certPEM, Key: keyPEM}, &info)
	return info, err
}

// Certs lists a site's certificates by domain, without their keys. Needs
// the admin token.
func (c *Client) Certs(ctx context.Context, site string) ([]atoll.CertInfo, error) {
	var list atoll.CertList
	err := c.doJSON(ctx, "GET", "/v1/sites/"+url.PathEscape(site)+"/certs", nil, &list)
	return list.Certs, err
}

// DeleteCert removes the certificate of a site's domain. Needs the admin
// token.
func (c *Client) DeleteCert(ctx context.Context, site, domain string) error {
	return c.doJSON(ctx, "DELETE", "/v1/sites/"+url.PathEscape(site)+"/certs/"+url.PathEscape(domain), nil, nil)
}
