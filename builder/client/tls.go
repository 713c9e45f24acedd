package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
)

// SetTLSConfig makes the client use cfg for https endpoints, e.g. to trust
// a private CA (RootCAs) or to present a client certificate. It needs the
// client's transport to be an *http.Transport (New's is); call it before
// the first request.
func (c *Client) SetTLSConfig(cfg *tls.Config) error {
	if c.HTTP == nil {
		c.HTTP = &http.Client{}
	}
	if c.HTTP.Transport == nil {
		c.HTTP.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	tr, ok := c.HTTP.Transport.(*http.Transport)
	if !ok {
		return fmt.Errorf("client: cannot set TLS config on a %T transport", c.HTTP.Transport)
	}
	tr.TLSClientConfig = cfg
	return nil
}

// TrustCA makes the client verify https endpoints against the CA
// certificates in caPEM (for a cluster with --tls-ca) instead of the
// system's roots.
func (c *Client) TrustCA(caPEM []byte) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("client: no PEM certificate in the CA file")
	}
	return c.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
}
