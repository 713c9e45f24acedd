package serve

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkServeHTTP measures the handler alone (lookups, negotiation,
// headers, opening the blob), without the network: the response body is
// closed unsent. The catalog and blob store are the tests' fakes, whose Stat
// costs four stat(2) calls where blobstore answers from memory, so the times
// are an upper bound; the allocations are the handler's and fasthttp's.
// Run with: go test -run '^$' -bench . -benchmem ./serve/
func BenchmarkServeHTTP(b *testing.B) {
	fx := newFixture(b)
	cases := []struct {
		name   string
		target string
		header [][2]string
	}{
		{"index br", "/", [][2]string{{"Accept-Encoding", "gzip, deflate, br, zstd"}}},
		{"clean url", "/about", nil},
		{"not modified", "/", [][2]string{{"Accept-Encoding", "br"}, {"If-None-Match", etagOf(fx.hash["index"], "br")}}},
		{"range", "/big.bin", [][2]string{{"Range", "bytes=1000-1999"}}},
		{"custom 404", "/nope", nil},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var req fasthttp.Request
			req.SetRequestURI(c.target)
			req.SetHost("blog." + testDomain)
			for _, h := range c.header {
				req.Header.Set(h[0], h[1])
			}
			var ctx fasthttp.RequestCtx
			b.ReportAllocs()
			for b.Loop() {
				ctx.Init(&req, nil, nil)
				fx.h.ServeHTTP(&ctx)
				if sc := ctx.Response.StatusCode(); sc >= 500 {
					b.Fatalf("status %d", sc)
				}
				ctx.Response.Reset() // closes the body stream
			}
		})
	}
}
