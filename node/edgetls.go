package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/mholt/acmez/v3"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/raft"
)

// Edge HTTPS. With Config.HTTPSAddr set, the edge also serves sites over
// TLS on that address, with the same handler as the HTTP edge. The
// certificate is chosen by SNI from the replicated certificates of custom
// domains (PUT /v1/sites/{site}/certs/{domain}), so every edge serves a
// certificate as soon as it has applied the upload; a name without one gets
// the default certificate (HTTPSCert/HTTPSKey, e.g. a wildcard for
// *.<domain>), or, without a default, a failed handshake.

// listenEdgeTLS loads the default certificate and binds the HTTPS
// listener, if any, and returns its port (0 without one).
func (n *Node) listenEdgeTLS() (int, error) {
	if n.cfg.HTTPSAddr == "" {
		return 0, nil
	}
	var def *tls.Certificate
	if n.cfg.HTTPSCert != "" || n.cfg.HTTPSKey != "" {
		c, err := tls.LoadX509KeyPair(n.cfg.HTTPSCert, n.cfg.HTTPSKey)
		if err != nil {
			return 0, fmt.Errorf("%w: --https-cert/--https-key: %v", ErrConfig, err)
		}
		def = &c
	}
	n.siteCerts = newCertCache(n.siteCert, def)
	ln, err := net.Listen("tcp", n.cfg.HTTPSAddr)
	if err != nil {
		return 0, fmt.Errorf("listen on --https-addr: %w", err)
	}
	n.httpsLn = ln
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startEdgeTLS serves the edge on the HTTPS listener listenEdgeTLS bound.
func (n *Node) startEdgeTLS() error {
	ln := n.httpsLn
	if ln == nil {
		return nil
	}
	accept := n.newAcceptor(ln, "edge https", n.edgeWaiting) // package listen
	cfg := &tls.Config{
		GetCertificate: n.edgeCertificate,
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"}, // fasthttp speaks HTTP/1.1 only
	}
	if n.acme != nil {
		cfg.NextProtos = append(cfg.NextProtos, acmez.ACMETLS1Protocol) // TLS-ALPN-01
	}
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.watchCerts(ln)
	}()
	go func() {
		defer n.wg.Done()
		if err := n.http.Serve(tls.NewListener(accept, cfg)); err != nil && n.ctx.Err() == nil {
			n.edgeStopped.Store(&err)
			n.log.Error("edge https server stopped", "err", err)
		}
	}()
	return nil
}

// watchCerts empties the certificate cache after every change of the
// replicated state, and closes the HTTPS listener when the node stops
// (which ends Serve even if it had not registered the listener with the
// server yet when Close ran).
func (n *Node) watchCerts(ln net.Listener) {
	for {
		changed := n.store.Changed()
		n.siteCerts.reset()
		select {
		case <-changed:
		case <-n.ctx.Done():
			ln.Close()
			return
		}
	}
}

// siteCert returns the certificate of a custom domain with its private
// key opened: the state records it sealed with a key derived from the
// cluster key (raft.SealCertKey), or as PEM when it was put on a node
// without one. A key that does not open (the cluster key changed) is an
// error, logged, and the handshake fails until the certificate is put
// again.
func (n *Node) siteCert(domain string) (atoll.Cert, error) {
	c, err := n.store.Cert(domain)
	if err != nil {
		return c, err
	}
	sealed := c.KeyPEM
	if c.KeyPEM, err = raft.OpenCertKey(n.cfg.ClusterKey, domain, sealed); err != nil {
		if n.sealWarned.first(domain + "\x00" + sealed) {
			n.log.Error("edge https: certificate not served", "domain", domain, "err", err)
		}
		return atoll.Cert{}, err
	}
	return c, nil
}

// onceSet remembers keys it has seen, up to maxCachedNames (then it starts
// over), so that a failure any client can trigger with its SNI is logged
// once, not at every handshake.
type onceSet struct {
	mu   sync.Mutex
	seen map[string]bool
}

// first reports whether key was not seen before, and remembers it.
func (o *onceSet) first(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seen[key] {
		return false
	}
	if o.seen == nil || len(o.seen) >= maxCachedNames {
		o.seen = map[string]bool{}
	}
	o.seen[key] = true
	return true
}

// EdgeHTTPSURL returns the base URL of the edge's HTTPS listener, "" when
// it has none.
func (n *Node) EdgeHTTPSURL() string {
	if n.httpsLn == nil {
		return ""
	}
	return "https://" + n.httpsLn.Addr().String()
}

// maxCachedNames bounds the cache entries of names without a certificate,
// which any client can make up with its SNI.
const maxCachedNames = 10000

// certCache holds parsed certificates by server name for the TLS
// handshakes of the edge. A lookup after reset reads the replicated
// record again, but reuses the parsed certificate when its PEM did not
// change: parsing is the expensive part, and resets happen after every
// applied batch.
type certCache struct {
	load     func(domain string) (atoll.Cert, error)
	fallback *tls.Certificate

	mu      sync.Mutex
	gen     uint64               // bumped by reset
	entries map[string]certEntry // this generation's lookups, by name
	parsed  map[string]certEntry // parsed certificates of earlier generations, by name
}

type certEntry struct {
	certPEM, keyPEM string
	cert            *tls.Certificate // nil: the name has no certificate
}

func newCertCache(load func(string) (atoll.Cert, error), fallback *tls.Certificate) *certCache {
	return &certCache{load: load, fallback: fallback, entries: map[string]certEntry{}, parsed: map[string]certEntry{}}
}

// reset forgets which names have which certificate.
func (c *certCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for name, e := range c.entries {
		if e.cert != nil {
			c.parsed[name] = e
		}
	}
	if len(c.parsed) > maxCachedNames {
		c.parsed = map[string]certEntry{}
	}
	c.entries = map[string]certEntry{}
}

// get is tls.Config.GetCertificate.
func (c *certCache) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.TrimSuffix(strings.ToLower(hello.ServerName), ".")
	cert, err := c.lookup(name)
	if err != nil {
		return nil, err
	}
	if cert == nil {
		if c.fallback == nil {
			return nil, fmt.Errorf("no certificate for server name %q", name)
		}
		return c.fallback, nil
	}
	return cert, nil
}

func (c *certCache) lookup(name string) (*tls.Certificate, error) {
	if !atoll.ValidDomain(name) {
		return nil, nil // no SNI, an IP address, or garbage
	}
	c.mu.Lock()
	e, ok := c.entries[name]
	gen := c.gen
	old := c.parsed[name]
	c.mu.Unlock()
	if ok {
		return e.cert, nil
	}

	rec, err := c.load(name)
	switch {
	case errors.Is(err, atoll.ErrNotFound):
		e = certEntry{}
	case err != nil:
		return nil, err // not cached: the next handshake tries again
	case old.cert != nil && old.certPEM == rec.CertPEM && old.keyPEM == rec.KeyPEM:
		e = old
	default:
		pair, err := tls.X509KeyPair([]byte(rec.CertPEM), []byte(rec.KeyPEM))
		if err != nil {
			return nil, fmt.Errorf("stored certificate for %q: %w", name, err)
		}
		e = certEntry{certPEM: rec.CertPEM, keyPEM: rec.KeyPEM, cert: &pair}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	// A reset since the read means the record may be stale: answer with it
	// (it was current a moment ago) but do not keep it.
	if c.gen == gen && (e.cert != nil || len(c.entries) < maxCachedNames) {
		c.entries[name] = e
	}
	return e.cert, nil
}

// The builder's certificate routes read through node's meta.
var _ builder.CertMeta = meta{}
