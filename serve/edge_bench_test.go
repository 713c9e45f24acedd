package serve

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"

	hraft "github.com/hashicorp/raft"
	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/raft"
)

// storeBlobs is serve.Blobs on a real blob store, as node wires it on a
// single node.
type storeBlobs struct{ s *blobstore.Store }

func (b storeBlobs) Stat(_ context.Context, hash string) (blobstore.Info, error) {
	return b.s.Stat(hash)
}

func (b storeBlobs) Open(_ context.Context, hash, encoding string) (*os.File, int64, error) {
	return b.s.Open(hash, encoding)
}

// realEdge is a Handler over the production Catalog (a raft.FSM in bbolt)
// and blob store, with site "bench" published at bench.<testDomain>.
type realEdge struct {
	fsm   *raft.FSM
	blobs *blobstore.Store
	h     *Handler
	index uint64
	paths map[string]string // fixture name -> path
}

func (e *realEdge) apply(tb testing.TB, cmds ...raft.Command) {
	tb.Helper()
	logs := make([]*hraft.Log, len(cmds))
	for i, c := range cmds {
		b, err := raft.Encode(c)
		if err != nil {
			tb.Fatal(err)
		}
		e.index++
		logs[i] = &hraft.Log{Index: e.index, Term: 1, Type: hraft.LogCommand, Data: b}
	}
	for i, r := range e.fsm.ApplyBatch(logs) {
		if r != nil {
			tb.Fatalf("apply %T: %v", cmds[i], r)
		}
	}
}

// textOf returns n bytes of compressible, HTML-like text.
func textOf(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "<p class=\"c%d\">Atoll serves static sites from many nodes, item %d.</p>\n", i%7, i)
	}
	return b.Bytes()[:n]
}

func newRealEdge(tb testing.TB) *realEdge {
	tb.Helper()
	fsm, err := raft.OpenFSM(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { fsm.Close() })
	bs, err := blobstore.New(blobstore.Config{Dir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	e := &realEdge{fsm: fsm, blobs: bs, paths: map[string]string{}}
	content := map[string][]byte{
		"/1k.bin":     pseudoRandom(1 << 10),
		"/16k.bin":    pseudoRandom(16 << 10)[:16<<10],
		"/256k.bin":   pseudoRandom(256 << 10),
		"/page.html":  textOf(30 << 10),
		"/index.html": textOf(4 << 10),
	}
	content["/16k.bin"] = append([]byte("x"), content["/16k.bin"][1:]...) // distinct from the 1k prefix
	var files []atoll.File
	for p, c := range content {
		info, err := bs.Put(context.Background(), "", bytes.NewReader(c))
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, atoll.File{Path: p, Hash: info.Hash})
	}
	// The variants exist before anything is measured: a blob still
	// pending would be compressed per request (onthefly.go).
	if err := bs.WaitCompressed(context.Background()); err != nil {
		tb.Fatal(err)
	}
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	e.apply(tb, raft.CreateSite{Name: "bench", Created: at})
	e.apply(tb, raft.CreateDeploy{ID: "dep1", Site: "bench", Files: len(files), Created: at})
	for _, c := range raft.BatchFiles("dep1", files) {
		e.apply(tb, c)
	}
	e.apply(tb, raft.MarkReady{Deploy: "dep1"}, raft.Publish{Deploy: "dep1", At: at})
	// Metrics on, as a node runs the edge.
	h, err := New(Config{Domain: testDomain, Stats: NewStats(false)}, fsm, storeBlobs{bs})
	if err != nil {
		tb.Fatal(err)
	}
	e.h = h
	return e
}

// BenchmarkEdge measures the handler alone on the production Catalog and
// blob store: host resolution, manifest lookup, negotiation, headers and
// the body (a memory-cached body, or an opened file closed unsent). The
// allocations it reports are the hot path's. Run with:
//
//	go test -run '^$' -bench Edge -benchmem ./serve/
func BenchmarkEdge(b *testing.B) {
	e := newRealEdge(b)
	cases := []struct {
		name   string
		target string
		header [][2]string
	}{
		{"1k", "/1k.bin", nil},
		{"16k", "/16k.bin", nil},
		{"256k", "/256k.bin", nil},
		{"30k html br", "/page.html", [][2]string{{"Accept-Encoding", "br, gzip"}}},
		{"index", "/", [][2]string{{"Accept-Encoding", "gzip, deflate, br, zstd"}}},
		{"not modified", "/1k.bin", [][2]string{{"If-None-Match", "*"}}},
		{"missing", "/nope", nil},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var req fasthttp.Request
			req.SetRequestURI(c.target)
			req.SetHost("bench." + testDomain)
			for _, h := range c.header {
				req.Header.Set(h[0], h[1])
			}
			// Init once: it allocates a stand-in remote address, which a
			// server's connection does not. The handler leaves the
			// request as it is, so each iteration serves the same one.
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, nil, nil)
			b.ReportAllocs()
			for b.Loop() {
				e.h.ServeHTTP(&ctx)
				if sc := ctx.Response.StatusCode(); sc >= 500 {
					b.Fatalf("status %d", sc)
				}
				ctx.Response.Reset() // closes a body stream
			}
		})
	}
}

// BenchmarkEdgeParallel is BenchmarkEdge's 1k case from every core at
// once: it shows contention on shared locks.
func BenchmarkEdgeParallel(b *testing.B) {
	e := newRealEdge(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var req fasthttp.Request
		req.SetRequestURI("/1k.bin")
		req.SetHost("bench." + testDomain)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		for pb.Next() {
			e.h.ServeHTTP(&ctx)
			if sc := ctx.Response.StatusCode(); sc != 200 {
				b.Fatalf("status %d", sc)
			}
			ctx.Response.Reset()
		}
	})
}
