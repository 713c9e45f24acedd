package serve

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/raft"
	"github.com/atoll-hosting/atoll/siterules"
)

// addRulesSite publishes site "rules" on e: the files of site "bench" and
// a _redirects of 10,000 static and 100 dynamic rules (the issue's
// yardstick), plus a _headers of 40 blocks (121 header lines) for paths
// under /assets/ and /section-N/, none of which matches the files of site
// "bench".
func addRulesSite(tb testing.TB, e *realEdge) {
	tb.Helper()
	var red strings.Builder
	for i := range 100 {
		fmt.Fprintf(&red, "/dyn%d/:section/* /new%d/:section/:splat 301\n", i, i)
	}
	for i := range 10000 {
		fmt.Fprintf(&red, "/old/page-%d /new/page-%d 301\n", i, i)
	}
	red.WriteString("/app/* /index.html 200\n")
	hdr := "/assets/*\n  X-Frame-Options: DENY\n  X-Content-Type-Options: nosniff\n  Referrer-Policy: same-origin\n  Content-Security-Policy: default-src 'self'\n"
	for i := range 39 {
		hdr += fmt.Sprintf("/section-%d/*\n  Cache-Control: public, max-age=%d\n  X-Robots-Tag: noindex\n  Link: </section-%d/a.css>; rel=preload\n", i, 60*(i+1), i)
	}
	publishRules(tb, e, "rules", "dep2", red.String(), hdr)
}

// publishRules publishes deploy id of a new site on e, with the files of
// site "bench" and the given _redirects and _headers compiled.
func publishRules(tb testing.TB, e *realEdge, site, id, redirects, headers string) {
	tb.Helper()
	rules, _, err := siterules.Compile(siterules.Sources{Redirects: []byte(redirects), Headers: []byte(headers)})
	if err != nil {
		tb.Fatal(err)
	}
	enc, err := siterules.Encode(rules)
	if err != nil {
		tb.Fatal(err)
	}
	var files []atoll.File
	if err := e.fsm.Files("dep1", func(f atoll.File) error { files = append(files, f); return nil }); err != nil {
		tb.Fatal(err)
	}
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	e.apply(tb, raft.SetFeatureLevel{Level: atoll.LevelFeatureLevels}) // rules count from there
	e.apply(tb, raft.CreateSite{Name: site, Created: at})
	e.apply(tb, raft.CreateDeploy{ID: id, Site: site, Files: len(files), Created: at})
	for _, c := range raft.BatchFiles(id, files) {
		e.apply(tb, c)
	}
	e.apply(tb, raft.MarkReady{Deploy: id, Rules: enc}, raft.Publish{Deploy: id, At: at})
}

// BenchmarkEdgeRules compares a site with 10,000 static and 100 dynamic
// redirects to the same site without rules, on a file no rule matches, and
// measures matched rules. Run with:
//
//	go test -run '^$' -bench EdgeRules -benchmem ./serve/
func BenchmarkEdgeRules(b *testing.B) {
	e := newRealEdge(b)
	addRulesSite(b, e)
	cases := []struct {
		name, host, target string
		want               int
	}{
		{"file without rules", "bench", "/1k.bin", 200},
		{"file with rules", "rules", "/1k.bin", 200},
		{"static rule", "rules", "/old/page-5000", 301},
		{"dynamic rule", "rules", "/dyn99/a/b/c", 301},
		{"spa rewrite", "rules", "/app/x/y", 200},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var req fasthttp.Request
			req.SetRequestURI(c.target)
			req.SetHost(c.host + "." + testDomain)
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, nil, nil)
			b.ReportAllocs()
			for b.Loop() {
				e.h.ServeHTTP(&ctx)
				if sc := ctx.Response.StatusCode(); sc != c.want {
					b.Fatalf("status %d, want %d", sc, c.want)
				}
				ctx.Response.Reset()
			}
		})
	}
}
