package serve

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"

	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll/raft"
)

// BenchmarkEdgeRandomPaths serves random paths of a deploy with n manifest
// entries (all the same 1 KiB blob): with 1,000 entries every route is
// cached after the first round; with 200,000 most requests miss the route
// cache (maxPaths), and are answered by the deploy's index (index.go), or
// with "noindex" read the manifest in bbolt, as bench's metadata section
// does with 1M entries.
//
//	go test -run '^$' -bench EdgeRandomPaths -benchmem ./serve/
func BenchmarkEdgeRandomPaths(b *testing.B) {
	for _, c := range []struct {
		n       int
		noIndex bool
	}{{1_000, false}, {200_000, false}, {200_000, true}} {
		name := fmt.Sprint(c.n)
		if c.noIndex {
			name += "/noindex"
		}
		n := c.n
		b.Run(name, func(b *testing.B) {
			e := newRealEdge(b)
			if c.noIndex {
				e.h.indexes = nil
			}
			hash, err := e.fsm.File("dep1", "/1k.bin")
			if err != nil {
				b.Fatal(err)
			}
			files := make([]atoll.File, n)
			paths := make([][]byte, n)
			for i := range files {
				p := fmt.Sprintf("/docs/section-%d/file-%07d.bin", i%97, i)
				files[i] = atoll.File{Path: p, Hash: hash}
				paths[i] = []byte(p)
			}
			slices.SortFunc(files, func(a, b atoll.File) int { return strings.Compare(a.Path, b.Path) })
			at := time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)
			e.apply(b, raft.CreateDeploy{ID: "big", Site: "bench", Files: n, Created: at})
			for _, c := range raft.BatchFiles("big", files) {
				e.apply(b, c)
			}
			e.apply(b, raft.MarkReady{Deploy: "big"}, raft.Publish{Deploy: "big", At: at})
			if d, err := e.fsm.Deploy("big"); err != nil || d.State != atoll.StatePublished {
				b.Fatalf("Deploy: %+v %v", d, err)
			}
			if _, err := e.fsm.File("big", files[0].Path); err != nil {
				b.Fatalf("File: %v", err)
			}
			var req fasthttp.Request
			host := "big--bench." + testDomain // the deploy's preview host
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, nil, nil)
			ctx.Request.SetRequestURIBytes(paths[0])
			ctx.Request.SetHost(host)
			e.h.ServeHTTP(&ctx) // asks for the index
			ctx.Response.Reset()
			e.h.indexes.wait()
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			for b.Loop() {
				ctx.Request.SetRequestURIBytes(paths[rng.IntN(n)])
				ctx.Request.SetHost(host)
				e.h.ServeHTTP(&ctx)
				if sc := ctx.Response.StatusCode(); sc != 200 {
					b.Fatalf("status %d for %s %s", sc, ctx.Request.Host(), ctx.Request.RequestURI())
				}
				ctx.Response.Reset()
			}
		})
	}
}

// BenchmarkEdgeManySites serves random paths of random sites among n
// sites of 100 files each (compact manifests, feature level 5), as
// atoll-scale's "every site" lookups do: with 10 sites every host and
// route is cached after the first round; with 20,000 most requests are
// for a host not seen in the current cache generation.
//
//	go test -run '^$' -bench EdgeManySites -benchmem ./serve/
func BenchmarkEdgeManySites(b *testing.B) {
	const files = 100
	for _, n := range []int{10, 20_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			e := newRealEdge(b)
			hash, err := e.fsm.File("dep1", "/1k.bin")
			if err != nil {
				b.Fatal(err)
			}
			at := time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)
			e.apply(b, raft.SetFeatureLevel{Level: atoll.MaxFeatureLevel})
			manifest := make([]atoll.File, files)
			for j := range manifest {
				manifest[j] = atoll.File{Path: fmt.Sprintf("/page-%03d.html", j), Hash: hash}
			}
			for lo := 0; lo < n; lo += 500 {
				var cmds []raft.Command
				for i := lo; i < min(n, lo+500); i++ {
					site, dep := fmt.Sprintf("s%06d", i), fmt.Sprintf("d%06d", i)
					cmds = append(cmds, raft.CreateSite{Name: site, Created: at},
						raft.CreateDeploy{ID: dep, Site: site, Files: files, Created: at})
					for _, c := range raft.BatchFiles(dep, manifest) {
						cmds = append(cmds, c)
					}
					cmds = append(cmds, raft.MarkReady{Deploy: dep}, raft.Publish{Deploy: dep, At: at})
				}
				e.apply(b, cmds...)
			}
			hosts := make([][]byte, n)
			for i := range hosts {
				hosts[i] = []byte(fmt.Sprintf("s%06d.%s", i, testDomain))
			}
			paths := make([][]byte, files)
			for j := range paths {
				paths[j] = []byte(manifest[j].Path)
			}
			var ctx fasthttp.RequestCtx
			var req fasthttp.Request
			ctx.Init(&req, nil, nil)
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			for b.Loop() {
				ctx.Request.SetRequestURIBytes(paths[rng.IntN(files)])
				ctx.Request.SetHostBytes(hosts[rng.IntN(n)])
				e.h.ServeHTTP(&ctx)
				if sc := ctx.Response.StatusCode(); sc != 200 {
					b.Fatalf("status %d for %s %s", sc, ctx.Request.Host(), ctx.Request.RequestURI())
				}
				ctx.Response.Reset()
			}
		})
	}
}
