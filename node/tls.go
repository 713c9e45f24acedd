package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/pki"
)

// Cluster TLS. With Config.TLSCert, TLSKey and TLSCA set, every
// node-to-node path runs on mutual TLS against the cluster CA:
//
//   - Raft: raft.Config.TLS (RequireAndVerifyClientCert both ways).
//   - The API listener serves HTTPS. It asks for a client certificate but
//     does not require one (VerifyClientCertIfGiven), so builders and the
//     CLI connect with a token alone; a certificate that is given must
//     chain to the CA or the handshake fails.
//   - Peer endpoints (/v1/peer/*) and a join by cluster key (POST /v1/nodes
//     without an admin token) additionally require a verified client
//     certificate (requirePeer, adminOrPeer); the cluster key is still
//     checked too.
//   - Outgoing peer calls (blob push/fetch/has, forwarded writes, stats,
//     the join request, proxying to the leader) present the node's
//     certificate and verify the peer against the CA, at https://<api addr>.
//
// So a node without a certificate signed by the CA can neither join (its
// join call is refused, and raft would not talk to it) nor fetch a blob.
// All nodes of a cluster must agree: the node table holds host:port, and
// the scheme is https for everyone or for no one.

// loadClusterTLS reads the files of Config.TLSCert, TLSKey and TLSCA
// (pki.LoadCluster), or returns nil when none is set.
func loadClusterTLS(cfg *Config) (*pki.Cluster, error) {
	n := 0
	for _, f := range []string{cfg.TLSCert, cfg.TLSKey, cfg.TLSCA} {
		if f != "" {
			n++
		}
	}
	switch n {
	case 0:
		return nil, nil
	case 3:
	default:
		return nil, fmt.Errorf("%w: --tls-cert, --tls-key and --tls-ca go together", ErrConfig)
	}
	c, err := pki.LoadCluster(cfg.TLSCert, cfg.TLSKey, cfg.TLSCA)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if host, _, err := net.SplitHostPort(cfg.RaftAddr); err == nil && !c.Covers(host) {
		cfg.Logger.Warn("the node certificate does not cover the host of --raft-addr: peers will refuse its TLS connections",
			"component", "node", "host", host, "cert_names", c.Names())
	}
	return c, nil
}

// setupTLS loads the cluster TLS files, if any, and puts the node's peer
// clients on them.
func (n *Node) setupTLS() error {
	t, err := loadClusterTLS(&n.cfg)
	if err != nil || t == nil {
		return err
	}
	n.tls = t
	tr, ok := n.peer.HTTP.Transport.(*http.Transport)
	if !ok {
		return fmt.Errorf("peer client transport is a %T", n.peer.HTTP.Transport)
	}
	tr.TLSClientConfig = t.ClientConfig()
	other := http.DefaultTransport.(*http.Transport).Clone()
	other.Proxy = nil // peer traffic stays inside the cluster
	other.ForceAttemptHTTP2 = false
	other.TLSClientConfig = t.ClientConfig()
	n.peerHTTP.Transport = other
	return nil
}

// peerScheme is the scheme of every node's API: https with cluster TLS.
func (n *Node) peerScheme() string {
	if n.tls != nil {
		return "https"
	}
	return "http"
}

// peerURL returns the base URL of the API at addr (host:port, as the node
// table records it).
func (n *Node) peerURL(addr string) string { return n.peerScheme() + "://" + addr }

// peerTransport is what outgoing peer calls other than blob transfers use.
func (n *Node) peerTransport() http.RoundTripper {
	if n.peerHTTP.Transport != nil {
		return n.peerHTTP.Transport
	}
	return http.DefaultTransport
}

// peerCertOK reports whether r may make a peer call as far as TLS goes:
// always without cluster TLS, else only with a client certificate that
// verified against the cluster CA.
func (n *Node) peerCertOK(r *http.Request) bool {
	return n.tls == nil || r.TLS != nil && len(r.TLS.VerifiedChains) > 0
}

// refusePeerCert answers a peer call that lacks a verified client
// certificate.
func refusePeerCert(w http.ResponseWriter) {
	builder.WriteError(w, http.StatusForbidden,
		"this cluster runs on mutual TLS: node-to-node calls need a client certificate signed by the cluster CA")
}

// apiListener wraps the API listener in TLS when the cluster uses it.
func (n *Node) apiListener(ln net.Listener) net.Listener {
	if n.tls == nil {
		return ln
	}
	return tls.NewListener(ln, n.tls.ServerConfig())
}

// isTLSRefusal reports whether err is a TLS handshake that failed on a
// certificate (ours refused by the peer, or the peer's by us): a setup
// error that retrying does not fix.
func isTLSRefusal(err error) bool {
	if err == nil {
		return false
	}
	var verr *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var op *net.OpError // crypto/tls reports the peer's alert as Op "remote error"
	return errors.As(err, &verr) || errors.As(err, &unknown) || errors.As(err, &host) ||
		errors.As(err, &op) && op.Op == "remote error"
}
