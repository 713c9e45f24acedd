package serve

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/pki"
)

// httpsFixture is the fixture's edge with site blog HTTPS-only and HSTS,
// and the same handler also served over TLS at tlsAddr.
type httpsFixture struct {
	*fixture
	tlsAddr string
	roots   *x509.CertPool
}

func newHTTPSFixture(t *testing.T, port int, blog atoll.Site) *httpsFixture {
	t.Helper()
	fx := newFixtureConfig(t, Config{Domain: testDomain, HTTPSPort: port})
	base, _ := fx.cat.Site("blog")
	base.HTTPSOnly, base.HSTS = blog.HTTPSOnly, blog.HSTS
	fx.cat.addSite(base)

	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue("edge", nil) // localhost, 127.0.0.1
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: fx.h.ServeHTTP, Name: "atoll", ReadTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM())
	return &httpsFixture{fixture: fx, tlsAddr: ln.Addr().String(), roots: roots}
}

// doTLS sends one request over TLS and reads the answer.
func (fx *httpsFixture) doTLS(t *testing.T, r request) response {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fx.tlsAddr,
		&tls.Config{RootCAs: fx.roots, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, r.raw(true)); err != nil {
		t.Fatal(err)
	}
	return readResponse(t, bufio.NewReader(conn), r.method)
}

// TestHTTPSOnlyRedirect: a plain-HTTP request for an HTTPS-only site,
// whatever host names it, is answered 308 to the same URL over HTTPS on
// the listener's port, query kept; ACME challenges and other sites are
// served as before; nothing over plain HTTP carries HSTS.
func TestHTTPSOnlyRedirect(t *testing.T) {
	fx := newHTTPSFixture(t, 8443, atoll.Site{HTTPSOnly: true, HSTS: true})
	for _, tc := range []struct {
		name         string
		req          request
		wantStatus   int
		wantLocation string
	}{
		{"site host, query kept", request{target: "/docs/guide.html?a=1&b=%20x"}, 308,
			"https://blog.atoll.test:8443/docs/guide.html?a=1&b=%20x"},
		{"custom domain, port and case dropped", request{host: "WWW.Blog.Example.COM.:80", target: "/about"}, 308,
			"https://www.blog.example.com:8443/about"},
		{"escaped path", request{host: "blog.example.com", target: "/a%20b/%C3%BC.txt"}, 308,
			"https://blog.example.com:8443/a%20b/%C3%BC.txt"},
		{"dot segments cleaned", request{target: "/docs/../about?x"}, 308, "https://blog.atoll.test:8443/about?x"},
		{"preview of the site", request{host: "d1--blog.atoll.test", target: "/"}, 308, "https://d1--blog.atoll.test:8443/"},
		{"HEAD", request{method: "HEAD", target: "/"}, 308, "https://blog.atoll.test:8443/"},
		{"ACME challenge", request{target: "/.well-known/acme-challenge/token123"}, 404, ""},
		{"other site", request{host: "other.example.net"}, 200, ""},
		{"unknown host", request{host: "nobody.example.com"}, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := fx.do(t, tc.req)
			if res.status != tc.wantStatus || res.get("Location") != tc.wantLocation {
				t.Errorf("got %d Location %q, want %d %q", res.status, res.get("Location"), tc.wantStatus, tc.wantLocation)
			}
			if v := res.get("Strict-Transport-Security"); v != "" {
				t.Errorf("plain HTTP answer carries Strict-Transport-Security %q", v)
			}
			if tc.wantStatus == 308 && res.get("Cache-Control") != DefaultCacheControl {
				t.Errorf("Cache-Control %q, want %q", res.get("Cache-Control"), DefaultCacheControl)
			}
		})
	}
}

// TestHSTS: every answer over TLS for a site with HSTS carries
// Strict-Transport-Security, errors and 404s included; other sites' do not.
func TestHSTS(t *testing.T) {
	fx := newHTTPSFixture(t, 8443, atoll.Site{HTTPSOnly: true, HSTS: true})
	for _, tc := range []struct {
		name       string
		req        request
		wantStatus int
		wantHSTS   string
	}{
		{"file", request{target: "/"}, 200, HSTSValue},
		{"not modified", request{target: "/", header: []string{"If-None-Match: " + etagOf(fx.hash["index"], "")}}, 304, HSTSValue},
		{"custom 404", request{target: "/nope"}, 404, HSTSValue},
		{"unsatisfiable range", request{target: "/big.bin", header: []string{"Range: bytes=99999999-"}}, 416, HSTSValue},
		{"directory redirect", request{target: "/docs"}, 301, HSTSValue},
		{"other site", request{host: "other.example.net"}, 200, ""},
		{"unknown host", request{host: "nobody.example.com"}, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := fx.doTLS(t, tc.req)
			if res.status != tc.wantStatus || res.get("Strict-Transport-Security") != tc.wantHSTS {
				t.Errorf("got %d Strict-Transport-Security %q, want %d %q", res.status, res.get("Strict-Transport-Security"), tc.wantStatus, tc.wantHSTS)
			}
		})
	}
}

// TestHTTPSPolicyVariants: port 443 is left out of the redirect; an edge
// without an HTTPS listener serves an HTTPS-only site over plain HTTP; HSTS
// alone redirects nothing.
func TestHTTPSPolicyVariants(t *testing.T) {
	for _, tc := range []struct {
		name         string
		port         int
		blog         atoll.Site
		wantStatus   int
		wantLocation string
	}{
		{"port 443", 443, atoll.Site{HTTPSOnly: true}, 308, "https://blog.atoll.test/about"},
		{"no HTTPS listener", 0, atoll.Site{HTTPSOnly: true, HSTS: true}, 200, ""},
		{"HSTS alone", 8443, atoll.Site{HSTS: true}, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newHTTPSFixture(t, tc.port, tc.blog)
			res := fx.do(t, request{target: "/about"})
			if res.status != tc.wantStatus || res.get("Location") != tc.wantLocation || res.get("Strict-Transport-Security") != "" {
				t.Errorf("got %d Location %q Strict-Transport-Security %q, want %d %q and none",
					res.status, res.get("Location"), res.get("Strict-Transport-Security"), tc.wantStatus, tc.wantLocation)
			}
		})
	}
}

func TestNewRefusesHTTPSPort(t *testing.T) {
	for _, port := range []int{-1, 65536} {
		if _, err := New(Config{Domain: testDomain, HTTPSPort: port}, newFakeCatalog(), newFakeBlobs(t)); err == nil {
			t.Errorf("HTTPSPort %d accepted", port)
		}
	}
}
