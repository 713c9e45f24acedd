package serve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll/pki"
)

// BenchmarkHTTPS compares the edge's HTTPS path (fasthttp behind
// crypto/tls, HTTP/1.1) with the same handler served by net/http with
// HTTP/2, over real loopback TLS connections, in one run: parallel
// clients GET a 4 KiB page and a 30 KiB brotli page of a published site.
// The net/http side adapts each request into a fasthttp.RequestCtx, as an
// HTTP/2 edge reusing the handler would. Run with:
//
//	go test -run '^$' -bench BenchmarkHTTPS -benchmem -cpu 2 ./serve/
func BenchmarkHTTPS(b *testing.B) {
	e := newRealEdge(b)
	cert, roots := benchCert(b)
	fastAddr := serveFastTLS(b, e.h, cert)
	h2Addr := serveNetHTTP2(b, e.h, cert)
	for _, page := range []struct{ name, path, accept string }{
		{"4k", "/index.html", ""},
		{"30k br", "/page.html", "br"},
	} {
		for _, srv := range []struct {
			name string
			addr string
			h2   bool
		}{{"fasthttp h1", fastAddr, false}, {"net/http h2", h2Addr, true}} {
			b.Run(page.name+"/"+srv.name, func(b *testing.B) {
				tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"},
					ForceAttemptHTTP2: srv.h2, MaxIdleConnsPerHost: 64, DisableCompression: true}
				if !srv.h2 {
					tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // HTTP/1.1 only
				}
				defer tr.CloseIdleConnections()
				client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
				url := "https://" + srv.addr + page.path
				b.ReportAllocs()
				b.SetParallelism(16)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						req, _ := http.NewRequest("GET", url, nil)
						req.Host = "bench." + testDomain
						if page.accept != "" {
							req.Header.Set("Accept-Encoding", page.accept)
						}
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 || (srv.h2 && resp.ProtoMajor != 2) {
							b.Errorf("%s: %s", srv.name, resp.Status)
							return
						}
					}
				})
			})
		}
	}
}

func benchCert(b *testing.B) (tls.Certificate, *x509.CertPool) {
	ca, err := pki.NewCA("bench")
	if err != nil {
		b.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue("edge", nil)
	if err != nil {
		b.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM())
	return cert, roots
}

// serveFastTLS serves h as node's HTTPS edge does: fasthttp over a
// crypto/tls listener, HTTP/1.1.
func serveFastTLS(b *testing.B, h *Handler, cert tls.Certificate) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h.ServeHTTP, Name: "atoll"}
	go func() {
		_ = srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}))
	}()
	b.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// serveNetHTTP2 serves h through net/http with HTTP/2, adapting each
// request into a fasthttp.RequestCtx and copying the answer back.
func serveNetHTTP2(b *testing.B, h *Handler, cert tls.Certificate) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ctx fasthttp.RequestCtx
		var req fasthttp.Request
		req.Header.SetMethod(r.Method)
		req.SetRequestURI(r.URL.RequestURI())
		req.SetHost(r.Host)
		for k, vs := range r.Header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		ctx.Init(&req, nil, nil)
		h.ServeHTTP(&ctx)
		for k, v := range ctx.Response.Header.All() {
			w.Header().Add(string(k), string(v))
		}
		w.WriteHeader(ctx.Response.StatusCode())
		_ = ctx.Response.BodyWriteTo(w)
		ctx.Response.Reset() // closes a body stream
	}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return ln.Addr().String()
}
