package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Cluster is a node's identity in the cluster's mutual TLS: its
// certificate and key, and the cluster CA that every peer's certificate
// must chain to.
//
// The API listener asks for a client certificate but does not require one
// (ServerConfig: VerifyClientCertIfGiven), so builders and the CLI connect
// with a token alone; Raft requires one both ways (RaftConfig); outgoing
// peer calls present the node's certificate and verify the peer against
// the CA (ClientConfig).
type Cluster struct {
	cert tls.Certificate
	leaf *x509.Certificate
	pool *x509.CertPool // the cluster CA
}

// LoadCluster reads a node's certificate and key and the cluster CA, PEM
// files. It checks that the certificate chains to the CA for both server
// and client use, so a mix-up of files fails at start rather than as
// handshake errors on every peer. Its errors name each file by the flag of
// `atoll server` that gives it (--tls-cert, --tls-key, --tls-ca).
func LoadCluster(certFile, keyFile, caFile string) (*Cluster, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("--tls-ca %s: no PEM certificate", caFile)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("--tls-cert: %w", err)
		}
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return nil, fmt.Errorf("--tls-cert %s does not verify against --tls-ca %s for server and client use: %w",
				certFile, caFile, err)
		}
	}
	return &Cluster{cert: cert, leaf: leaf, pool: pool}, nil
}

// Covers reports whether the node certificate is valid for host (an IP
// address or a DNS name): peers refuse a TLS connection to a host it does
// not cover.
func (c *Cluster) Covers(host string) bool { return c.leaf.VerifyHostname(host) == nil }

// Names lists the DNS names and IP addresses the node certificate covers.
func (c *Cluster) Names() []string {
	out := append([]string(nil), c.leaf.DNSNames...)
	for _, ip := range c.leaf.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// RaftConfig is raft.Config.TLS: nil for a nil Cluster (no cluster TLS).
func (c *Cluster) RaftConfig() *tls.Config {
	if c == nil {
		return nil
	}
	return &tls.Config{Certificates: []tls.Certificate{c.cert}, ClientCAs: c.pool, MinVersion: tls.VersionTLS12}
}

// ServerConfig is the API listener's: a client certificate is optional,
// but verified when given.
func (c *Cluster) ServerConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{c.cert},
		ClientCAs:    c.pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}
}

// ClientConfig is for outgoing peer calls.
func (c *Cluster) ClientConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.cert}, RootCAs: c.pool, MinVersion: tls.VersionTLS12}
}
