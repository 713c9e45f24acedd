package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
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
// validation authority resolving every name to 127.0.0.1 and connecting
// to httpPort (HTTP-01) and tlsPort (TLS-ALPN-01) there.
type pebbleCA struct {
	DirURL   string
	CertFile string
	Roots    *x509.CertPool // the roots of the certificates it issues
}

func startPebble(t *testing.T, httpPort, tlsPort int) *pebbleCA {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	resolver := startLoopbackDNS(t)
	logger := log.New(io.Discard, "", 0)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, tlsPort, false, resolver, store)
	front := wfe.New(logger, store, validator, authority, nil, false, false, 1, 1)
	srv := httptest.NewTLSServer(front.Handler())
	t.Cleanup(srv.Close)

	certFile := filepath.Join(t.TempDir(), "pebble-wfe.pem")
	wfePEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(certFile, wfePEM, 0o644); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	for i := range authority.GetNumberOfRootCerts() {
		roots.AddCert(authority.GetRootCert(i).Cert)
	}
	return &pebbleCA{DirURL: srv.URL + "/dir", CertFile: certFile, Roots: roots}
}

// startLoopbackDNS answers every A question with 127.0.0.1 and every other
// question with no record, over UDP and TCP on one port, and returns its
// address.
func startLoopbackDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, question := range q.Question {
			if question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
					A:   net.IPv4(127, 0, 0, 1),
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
	pebble := startPebble(t, portOf(t, httpAddr), portOf(t, httpsAddr))
	node := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true, HTTPAddr: httpAddr,
		Flags: []string{"--https-addr", httpsAddr, "--acme", "--acme-ca", pebble.DirURL, "--acme-ca-root", pebble.CertFile}})
	node.Start()
	var st atoll.Status
	if err := node.Call(t.Context(), "GET", "/v1/status", nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.FeatureLevel < atoll.LevelFeatureLevels {
		// The ACME store's commands need level 2, which a new cluster
		// reaches once its leader raises it.
		t.Skipf("SKIPPED: the cluster is at feature level %d and nothing raises it: ACME needs %d", st.FeatureLevel, atoll.LevelFeatureLevels)
	}

	const domain = "shop.acme.test"
	site := filepath.Join(t.TempDir(), "site")
	writeTree(t, site, map[string]string{"index.html": "<h1>shop</h1>"})
	start := time.Now()
	node.MustCLI("site", "create", "shop", "--domain", domain)
	node.MustCLI("deploy", site, "--site", "shop")

	var last error
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		conn, err := tls.Dial("tcp", httpsAddr, &tls.Config{RootCAs: pebble.Roots, ServerName: domain})
		if err == nil {
			conn.Close()
			t.Logf("certificate served %v after the domain was added", time.Since(start).Round(10*time.Millisecond))
			return
		}
		last = err
	}
	t.Fatalf("no certificate for %s that verifies against Pebble's roots: %v", domain, last)
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	tcp, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return tcp.Port
}
