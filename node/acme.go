package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/atoll-hosting/atoll"
	atollacme "github.com/atoll-hosting/atoll/acme"
)

// ACME. With Config.ACME on and an HTTPS listener, every node manages a
// certificate for every custom domain of every site (and, with
// ACMESiteHosts, every <site>.<domain>) with certmagic, over the
// replicated ACME store (package acme): a name is ordered by whichever
// node takes its lock first, the others wait on the lock and then load
// the certificate it stored, so the cluster orders once per name; each
// node renews at two thirds of the lifetime the same way. Every node
// answers HTTP-01 on the edge's HTTP listener and TLS-ALPN-01 on its HTTPS
// listener from the replicated challenge tokens, whichever node started
// the order. Nothing is ordered below feature level
// atoll.LevelFeatureLevels (the ACME store's commands need it), and names
// the cluster does not serve are never ordered (no on-demand issuance).
// An uploaded certificate (atoll cert put) wins over an issued one.

// acmeChallengeWait is how long a challenge this node does not know yet
// waits for the node's state to bring it: the node that started the order
// stored it through Raft, and the CA may ask here before this node
// applied it.
const acmeChallengeWait = 3 * time.Second

// acmeSyncDelay gathers the state changes of a burst before the managed
// names are compared with the sites' again.
const acmeSyncDelay = time.Second

// acmeManager is a node's certmagic configuration and the names it
// manages.
type acmeManager struct {
	magic     *certmagic.Config
	cache     *certmagic.Cache
	issuer    *certmagic.ACMEIssuer
	challenge fasthttp.RequestHandler // HTTP-01 through certmagic, from the replicated tokens

	mu      sync.Mutex
	managed map[string]bool
}

// startACME sets up certmagic once both edge listeners are bound.
func (n *Node) startACME() error {
	if !n.cfg.ACME || n.httpsLn == nil {
		return nil
	}
	var roots *x509.CertPool
	if n.cfg.ACMECARoot != "" {
		pem, err := os.ReadFile(n.cfg.ACMECARoot)
		if err != nil {
			return fmt.Errorf("%w: --acme-ca-root: %v", ErrConfig, err)
		}
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%w: --acme-ca-root %s: no PEM certificate", ErrConfig, n.cfg.ACMECARoot)
		}
	}
	host, httpPort, _ := net.SplitHostPort(n.httpLn.Addr().String())
	_, httpsPort, _ := net.SplitHostPort(n.httpsLn.Addr().String())
	hp, _ := strconv.Atoi(httpPort)
	tp, _ := strconv.Atoi(httpsPort)

	storage := atollacme.NewStorage(meta{n.store, n}, n.cfg.ID, n.cfg.ClusterKey)
	n.acmeStore = storage
	zlog := zapToSlog(n.cfg.Logger.With("component", "acme"), n.acmeRetry)
	var magic *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: n.cfg.ACMERenewCheck,
		Logger:             zlog,
	})
	magic = certmagic.New(cache, certmagic.Config{Storage: storage, Logger: zlog, OnEvent: n.acmeEvent})
	// The solvers' own listeners fail to bind the edge's addresses, which
	// are ours: certmagic then leaves the challenges to our listeners.
	issuer := certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
		CA: n.cfg.ACMECA, Email: n.cfg.ACMEEmail, Agreed: true, TrustedRoots: roots,
		ListenHost: host, AltHTTPPort: hp, AltTLSALPNPort: tp, Logger: zlog,
	})
	magic.Issuers = []certmagic.Issuer{issuer}
	m := &acmeManager{magic: magic, cache: cache, issuer: issuer, managed: map[string]bool{}}
	m.challenge = fasthttpadaptor.NewFastHTTPHandler(issuer.HTTPChallengeHandler(http.NotFoundHandler()))
	n.acme = m
	n.background(func() {
		defer storage.Close()
		defer cache.Stop()
		n.acmeLoop(m)
	})
	return nil
}

// acmeLoop keeps the managed names equal to the names the sites serve.
func (n *Node) acmeLoop(m *acmeManager) {
	for {
		changed := n.store.Changed()
		if n.store.FeatureLevel() >= atoll.LevelFeatureLevels {
			if names, err := n.acmeNames(); err != nil {
				n.log.Warn("acme: list the sites' names", "err", err)
			} else {
				m.sync(n.ctx, names, n.log.Warn)
			}
		}
		select {
		case <-changed:
		case <-n.ctx.Done():
			return
		}
		select {
		case <-time.After(acmeSyncDelay):
		case <-n.ctx.Done():
			return
		}
	}
}

// acmeNames returns the names the cluster serves that get certificates:
// every custom domain without an uploaded certificate (which would win
// anyway), and every site host with ACMESiteHosts.
func (n *Node) acmeNames() ([]string, error) {
	sites, err := n.store.Sites()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range sites {
		for _, d := range s.Domains {
			if _, err := n.store.Cert(d); errors.Is(err, atoll.ErrNotFound) {
				names = append(names, d)
			} else if err != nil {
				return nil, err
			}
		}
		if n.cfg.ACMESiteHosts {
			names = append(names, s.Name+"."+n.cfg.Domain)
		}
	}
	return names, nil
}

// sync starts managing the names not managed yet and stops managing
// those no site serves any more.
func (m *acmeManager) sync(ctx context.Context, names []string, warn func(string, ...any)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := make(map[string]bool, len(names))
	var add []string
	for _, name := range names {
		want[name] = true
		if !m.managed[name] {
			add = append(add, name)
		}
	}
	var drop []certmagic.SubjectIssuer
	for name := range m.managed {
		if !want[name] {
			drop = append(drop, certmagic.SubjectIssuer{Subject: name})
			delete(m.managed, name)
		}
	}
	if len(drop) > 0 {
		m.cache.RemoveManaged(drop)
	}
	if len(add) == 0 {
		return
	}
	if err := m.magic.ManageAsync(ctx, add); err != nil {
		warn("acme: manage certificates", "names", add, "err", err)
		return
	}
	for _, name := range add {
		m.managed[name] = true
	}
}

// acmeHTTP answers ACME HTTP-01 challenges before the edge sees the
// request; anything else goes to next.
func (n *Node) acmeHTTP(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	m := n.acme
	if m == nil {
		return next
	}
	prefix := []byte("/.well-known/acme-challenge/")
	return func(ctx *fasthttp.RequestCtx) {
		if !ctx.IsGet() || !bytes.HasPrefix(ctx.Path(), prefix) || !n.acmeServes(ctx.Host()) {
			next(ctx)
			return
		}
		solved := n.untilApplied(ctx, func() bool {
			m.challenge(ctx)
			if ctx.Response.StatusCode() == http.StatusNotFound {
				ctx.Response.Reset()
				return false
			}
			return true
		})
		if !solved {
			next(ctx) // not a challenge of ours: maybe a file of the site
		}
	}
}

// acmeServes reports whether host (a Host header) is a name the cluster
// orders certificates for (acmeNames), by the replicated state: only those
// have challenges to answer, whether or not this node has started
// managing the name yet.
func (n *Node) acmeServes(host []byte) bool {
	h, _, err := net.SplitHostPort(string(host))
	if err != nil {
		h = string(host)
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if _, err := n.store.SiteByDomain(h); err == nil {
		return true
	}
	if label, ok := strings.CutSuffix(h, "."+n.cfg.Domain); ok && n.cfg.ACMESiteHosts {
		_, err := n.store.Site(label)
		return err == nil
	}
	return false
}

// untilApplied calls try until it reports true, again after each change
// of the node's state, for up to acmeChallengeWait.
func (n *Node) untilApplied(ctx context.Context, try func() bool) bool {
	timer := time.NewTimer(acmeChallengeWait)
	defer timer.Stop()
	for {
		changed := n.store.Changed()
		if try() {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		case <-n.ctx.Done():
			return false
		}
	}
}

// edgeCertificate is the HTTPS edge's tls.Config.GetCertificate: a
// TLS-ALPN-01 challenge is answered by certmagic (from the replicated
// tokens); otherwise an uploaded certificate wins, then an issued one,
// then the default certificate.
func (n *Node) edgeCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	m := n.acme
	if m == nil {
		return n.siteCerts.get(hello)
	}
	if slices.Contains(hello.SupportedProtos, acmez.ACMETLS1Protocol) {
		if !n.acmeServes([]byte(hello.ServerName)) {
			return m.magic.GetCertificate(hello) // no challenge of ours: no waiting
		}
		var cert *tls.Certificate
		var err error
		n.untilApplied(hello.Context(), func() bool {
			cert, err = m.magic.GetCertificate(hello)
			return err == nil
		})
		return cert, err
	}
	cert, err := n.siteCerts.lookup(strings.TrimSuffix(strings.ToLower(hello.ServerName), "."))
	if err != nil || cert != nil {
		return cert, err
	}
	if c, err := m.magic.GetCertificate(hello); err == nil && c != nil {
		return c, nil
	}
	return n.siteCerts.get(hello) // the default certificate, or the error
}
