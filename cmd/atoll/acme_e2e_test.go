package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
)

// pebbleCA is Pebble, the ACME test CA, run in this process: its
// directory at DirURL over TLS (its certificate in CertFile), its
// validation authority resolving every name to one of the loopback
// addresses given, in turn, and connecting to httpPort (HTTP-01) and
// tlsPort (TLS-ALPN-01) there.
type pebbleCA struct {
	DirURL   string
	CertFile string
	Roots    *x509.CertPool // the roots of the certificates it issues
	orders   atomic.Int64

	// With HoldChallenge, the first challenge response (the client telling
	// the CA to validate) waits until release is closed; challenged is
	// closed when it arrives.
	challenged, release chan struct{}
	holding             atomic.Bool

	ips atomic.Pointer[[]net.IP] // what the resolver answers, in turn
}

// Resolve makes the CA's resolver answer ips from now on.
func (p *pebbleCA) Resolve(ips []net.IP) { p.ips.Store(&ips) }

// Orders is the number of new orders the CA received.
func (p *pebbleCA) Orders() int64 { return p.orders.Load() }

// pebbleOptions are the ports Pebble validates against, the loopback
// addresses its resolver answers in turn (127.0.0.1 when none), and the
// lifetime of the certificates it issues (0: its default, 90 days).
type pebbleOptions struct {
	HTTPPort, TLSPort int
	IPs               []net.IP
	Validity          time.Duration
	HoldChallenge     bool
}

var pebbleEnv sync.Once

func startPebble(t *testing.T, o pebbleOptions) *pebbleCA {
	t.Helper()
	pebbleEnv.Do(func() {
		// Pebble reads these from the process environment; every test
		// wants the same values, and t.Setenv is refused in parallel tests.
		os.Setenv("PEBBLE_VA_NOSLEEP", "1")
		os.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	})
	p := &pebbleCA{challenged: make(chan struct{}), release: make(chan struct{})}
	if len(o.IPs) == 0 {
		o.IPs = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	p.Resolve(o.IPs)
	resolver := startLoopbackDNS(t, &p.ips)
	logger := log.New(io.Discard, "", 0)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default",
		ValidityPeriod: uint64(o.Validity / time.Second)}})
	validator := va.New(logger, o.HTTPPort, o.TLSPort, false, resolver, store)
	front := wfe.New(logger, store, validator, authority, nil, false, false, 1, 1)
	p.holding.Store(o.HoldChallenge)
	handler := front.Handler()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			p.orders.Add(1)
		}
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/chalZ/") && p.holding.CompareAndSwap(true, false) {
			close(p.challenged)
			select {
			case <-p.release:
			case <-r.Context().Done():
			}
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		if p.holding.Load() || !isClosed(p.release) {
			close(p.release)
		}
		srv.Close()
	})

	certFile := filepath.Join(t.TempDir(), "pebble-wfe.pem")
	wfePEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(certFile, wfePEM, 0o644); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	for i := range authority.GetNumberOfRootCerts() {
		roots.AddCert(authority.GetRootCert(i).Cert)
	}
	p.DirURL, p.CertFile, p.Roots = srv.URL+"/dir", certFile, roots
	return p
}

// startLoopbackDNS answers every A question with one of *ips in turn,
// except for names under "unreachable.", and every other question with no
// record, over UDP and TCP on one port, and returns its address.
func startLoopbackDNS(t *testing.T, ips *atomic.Pointer[[]net.IP]) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var next atomic.Int64
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		answer := *ips.Load()
		for _, question := range q.Question {
			if question.Qtype == dns.TypeA && !strings.HasPrefix(question.Name, "unreachable.") {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
					A:   answer[int(next.Add(1))%len(answer)],
				})
			}
		}
		_ = w.WriteMsg(m)
	})
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return ln.Addr().String()
}

// TestEndToEndACME: a custom domain added to a site gets a certificate
// from the ACME server (Pebble, validating HTTP-01 against the node's
// edge), which the node's HTTPS edge serves by SNI to a client that
// trusts only Pebble's roots.
func TestEndToEndACME(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a process and an ACME server")
	}
	httpAddr, err := atolltest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	httpsAddr, err := atolltest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	pebble := startPebble(t, pebbleOptions{HTTPPort: portOf(t, httpAddr), TLSPort: portOf(t, httpsAddr)})
	node := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true, HTTPAddr: httpAddr,
		Flags: []string{"--https-addr", httpsAddr, "--acme", "--acme-ca", pebble.DirURL, "--acme-ca-root", pebble.CertFile}})
	node.Start()
	requireLevel2(t, node)

	const domain = "shop.acme.test"
	site := filepath.Join(t.TempDir(), "site")
	writeTree(t, site, map[string]string{"index.html": "<h1>shop</h1>"})
	node.MustCLI("site", "create", "shop")
	node.MustCLI("deploy", site, "--site", "shop")
	start := time.Now()
	node.MustCLI("site", "update", "shop", "--domain", domain)

	waitIssued(t, pebble, httpsAddr, domain)
	t.Logf("certificate served %v after site update --domain", time.Since(start).Round(10*time.Millisecond))
	if n := pebble.Orders(); n != 1 {
		t.Errorf("the CA received %d orders, want 1", n)
	}
	list := node.MustCLI("cert", "list", "--site", "shop")
	if !regexp.MustCompile(`shop\.acme\.test +issued +valid +\d{4}-.*Pebble`).MatchString(list) {
		t.Errorf("cert list:\n%s\nwant shop.acme.test issued, valid, an expiry and Pebble's issuer", list)
	}
	checkExpiryMetric(t, node, "shop", domain)

	// A name the CA cannot reach fails, and says why.
	node.MustCLI("site", "create", "broken", "--domain", "unreachable.acme.test")
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		list = node.MustCLI("cert", "list", "--site", "broken")
		if regexp.MustCompile(`unreachable\.acme\.test +issued +failing`).MatchString(list) &&
			regexp.MustCompile(`unreachable\.acme\.test: .*Could not resolve.*1 attempts in a row failed; next retry at \d{4}-`).MatchString(list) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cert list:\n%s\nwant unreachable.acme.test failing with its error and next retry", list)
		}
	}
	t.Logf("cert list of a failing name:\n%s", list)
}

// checkExpiryMetric waits for node's /metrics to give domain's certificate
// the expiry GET /v1/sites/{site}/certs (cert list, the status page) gives.
func checkExpiryMetric(t *testing.T, node *atolltest.Server, site, domain string) {
	t.Helper()
	var list atoll.CertList
	status, body, err := node.Node.API(t.Context(), "GET", "/v1/sites/"+site+"/certs", node.Token(), "", nil)
	if err == nil && status == 200 {
		err = json.Unmarshal(body, &list)
	}
	if err != nil || status != 200 || len(list.Certs) != 1 {
		t.Fatalf("GET /v1/sites/%s/certs: %d %v %s", site, status, err, body)
	}
	want := float64(list.Certs[0].NotAfter.Unix())
	scrapeUntil(t, node, func(m metricFamilies) bool {
		return m.value("atoll_tls_cert_expiry_timestamp_seconds", "domain", domain, "site", site) == want
	})
}

// requireLevel2 waits until the cluster is at feature level 2, which the
// ACME store's commands need and a new cluster's leader raises it to once
// it knows every node's binary; it skips the test when the node reports
// no feature level at all (a build whose node does not raise it yet).
func requireLevel2(t *testing.T, node *atolltest.Server) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var st atoll.Status
		if err := node.Call(t.Context(), "GET", "/v1/status", nil, &st); err != nil {
			t.Fatal(err)
		}
		switch {
		case st.FeatureLevel == 0:
			t.Skipf("SKIPPED: the node reports no cluster feature level, so nothing raises it to %d, which ACME needs", atoll.LevelFeatureLevels)
		case st.FeatureLevel >= atoll.LevelFeatureLevels:
			return
		case time.Now().After(deadline):
			t.Fatalf("the cluster is still at feature level %d after 30s, want %d", st.FeatureLevel, atoll.LevelFeatureLevels)
		}
	}
}

// waitIssued waits until the HTTPS listener at addr serves, for SNI
// domain, a certificate that verifies against the CA's roots.
func waitIssued(t *testing.T, ca *pebbleCA, addr, domain string) {
	t.Helper()
	var last error
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Roots, ServerName: domain})
		if err == nil {
			conn.Close()
			return
		}
		last = err
	}
	t.Fatalf("%s serves no certificate for %s that verifies against the CA's roots: %v", addr, domain, last)
}

// acmeCluster is a cluster whose nodes each listen on their own loopback
// address with the same edge ports, the CA's resolver answering each of
// them in turn.
type acmeCluster struct {
	nodes      []*atolltest.Server
	httpsAddrs []string // each node's HTTPS listener
	ca         *pebbleCA
}

// startACMECluster starts nodes ids (the first bootstraps; "edge..." ids
// are edges) with ACME and more server flags, against a Pebble with
// options o (startACMECluster sets its ports and addresses).
func startACMECluster(t *testing.T, ids []string, o pebbleOptions, flags ...string) *acmeCluster {
	t.Helper()
	httpPort, httpsPort := portOf(t, freeAddr(t)), portOf(t, freeAddr(t))
	var ips []net.IP
	for i := range ids {
		ips = append(ips, net.IPv4(127, 0, 0, byte(11+i)))
	}
	o.HTTPPort, o.TLSPort, o.IPs = httpPort, httpsPort, ips
	c := &acmeCluster{ca: startPebble(t, o)}
	const key, token = "e2e-cluster-key", "e2e-admin-token"
	for i, id := range ids {
		httpsAddr := net.JoinHostPort(ips[i].String(), strconv.Itoa(httpsPort))
		f := append([]string{"--cluster-key", key, "--https-addr", httpsAddr,
			"--acme", "--acme-ca", c.ca.DirURL, "--acme-ca-root", c.ca.CertFile}, flags...)
		if i > 0 {
			f = append(f, "--join", "http://"+c.nodes[0].APIAddr)
		}
		if strings.HasPrefix(id, "edge") {
			f = append(f, "--role", "edge")
		}
		n := atolltest.NewServer(t, atolltest.NodeConfig{ID: id, AdminToken: token, Bootstrap: i == 0,
			HTTPAddr: net.JoinHostPort(ips[i].String(), strconv.Itoa(httpPort)), Flags: f})
		n.Start()
		c.nodes = append(c.nodes, n)
		c.httpsAddrs = append(c.httpsAddrs, httpsAddr)
	}
	requireLevel2(t, c.nodes[0])
	return c
}

// TestEndToEndACMECluster: 3 core nodes and an edge: a domain added to a
// site is ordered once for the whole cluster, its challenge answered by
// whichever node the CA reaches, and every node serves the certificate by
// SNI.
func TestEndToEndACMECluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts four processes and an ACME server")
	}
	c := startACMECluster(t, []string{"core1", "core2", "core3", "edge1"}, pebbleOptions{})
	const domain = "shop.acme.test"
	site := filepath.Join(t.TempDir(), "site")
	writeTree(t, site, map[string]string{"index.html": "<h1>shop</h1>"})
	start := time.Now()
	c.nodes[1].MustCLI("site", "create", "shop", "--domain", domain)
	c.nodes[1].MustCLI("deploy", site, "--site", "shop")
	for i, n := range c.nodes {
		waitIssued(t, c.ca, c.httpsAddrs[i], domain)
		t.Logf("%s serves the certificate %v after the domain was added", n.ID, time.Since(start).Round(10*time.Millisecond))
	}
	if n := c.ca.Orders(); n != 1 {
		t.Errorf("the CA received %d orders for one domain on four nodes, want 1", n)
	}
}

// TestEndToEndACMERenewal: certificates that live 30s are renewed when a
// third of that is left, and every node serves the new one without a
// restart.
func TestEndToEndACMERenewal(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts two processes and an ACME server")
	}
	c := startACMECluster(t, []string{"core1", "edge1"}, pebbleOptions{Validity: 30 * time.Second}, "--acme-renew-check", "1s")
	const domain = "shop.acme.test"
	c.nodes[0].MustCLI("site", "create", "shop", "--domain", domain)
	first := map[string]string{}
	for i, n := range c.nodes {
		waitIssued(t, c.ca, c.httpsAddrs[i], domain)
		first[n.ID] = servedSerial(t, c.ca, c.httpsAddrs[i], domain)
	}
	for i, n := range c.nodes {
		var serial string
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if serial = servedSerial(t, c.ca, c.httpsAddrs[i], domain); serial != first[n.ID] && serial != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still serves certificate %s after 60s, want a renewed one", n.ID, first[n.ID])
			}
		}
		t.Logf("%s: certificate %s renewed as %s", n.ID, first[n.ID], serial)
	}
}

// servedSerial is the serial number of the certificate the HTTPS listener
// at addr serves for domain, "" when none verifies against the CA's roots.
func servedSerial(t *testing.T, ca *pebbleCA, addr, domain string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Roots, ServerName: domain})
	if err != nil {
		return ""
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestEndToEndACMELeaderKilled: the leader is killed while an order waits
// for the CA's validation; the cluster still ends with one valid
// certificate on every live node, after at most one more order (when the
// killed node was the one ordering, another takes over once its lock
// expires).
func TestEndToEndACMELeaderKilled(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three processes and an ACME server")
	}
	c := startACMECluster(t, []string{"core1", "core2", "core3"}, pebbleOptions{HoldChallenge: true})
	const domain = "shop.acme.test"
	c.nodes[0].MustCLI("site", "create", "shop", "--domain", domain)
	select {
	case <-c.ca.challenged:
	case <-time.After(60 * time.Second):
		t.Fatal("no order reached the challenge step within 60s")
	}
	var st atoll.Status
	if err := c.nodes[0].Call(t.Context(), "GET", "/v1/status", nil, &st); err != nil {
		t.Fatal(err)
	}
	leader := slices.IndexFunc(c.nodes, func(n *atolltest.Server) bool { return n.ID == st.LeaderID })
	if leader < 0 {
		t.Fatalf("leader %q is not one of the nodes", st.LeaderID)
	}
	c.nodes[leader].Kill(syscall.SIGKILL)
	var live []net.IP
	for i := range c.nodes {
		if i != leader {
			host, _, _ := net.SplitHostPort(c.httpsAddrs[i])
			live = append(live, net.ParseIP(host))
		}
	}
	c.ca.Resolve(live) // the domain's DNS no longer names the dead node
	close(c.ca.release)
	t.Logf("killed the leader %s while the order waited for validation", st.LeaderID)
	for i, n := range c.nodes {
		if i != leader {
			waitIssued(t, c.ca, c.httpsAddrs[i], domain)
			t.Logf("%s serves the certificate", n.ID)
		}
	}
	if n := c.ca.Orders(); n > 2 {
		t.Errorf("the CA received %d orders for one domain, want at most 2 (one retry)", n)
	}
	t.Logf("orders: %d", c.ca.Orders())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := atolltest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return tcp.Port
}
