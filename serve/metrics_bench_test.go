package serve

import (
	"testing"
)

// BenchmarkEdgeStats is the handler's cost of counting: the same edge
// without Stats (nil: nothing counted), with Stats as a node runs it, and
// with per-site labels. The ratio of "off" to "on" is the metrics
// overhead issue 14 bounds at 3% of throughput. Run with:
//
//	go test -run '^$' -bench EdgeStats -benchmem ./serve/
func BenchmarkEdgeStats(b *testing.B) {
	e := newRealEdge(b)
	type mode struct {
		name string
		h    *Handler
	}
	var modes []mode
	for _, m := range []struct {
		name  string
		stats *Stats
	}{{"off", nil}, {"on", NewStats(false)}, {"on with site labels", NewStats(true)}} {
		h, err := New(Config{Domain: testDomain, Stats: m.stats}, e.fsm, storeBlobs{e.blobs})
		if err != nil {
			b.Fatal(err)
		}
		modes = append(modes, mode{m.name, h})
	}
	// The modes of a case run one after the other, so that they share the
	// machine's state as closely as a run allows.
	for _, c := range []struct {
		name, target string
		header       [][2]string
	}{
		{"1k", "/1k.bin", nil},
		{"30k html br", "/page.html", [][2]string{{"Accept-Encoding", "br, gzip"}}},
		{"missing", "/nope", nil},
	} {
		for _, m := range modes {
			b.Run(c.name+"/"+m.name, func(b *testing.B) {
				serveLoop(b, m.h, "bench."+testDomain, c.target, c.header)
			})
		}
	}
}
