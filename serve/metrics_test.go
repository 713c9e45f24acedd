package serve

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll/blobstore"
)

// gathered returns the value of the counter name with the given label
// values (name=value pairs), or -1 when there is none.
func gathered(t *testing.T, c prometheus.Collector, name string, labels map[string]string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

// serveCtx runs one request through h and returns its context; hdr holds
// header names and values, in pairs.
func serveCtx(h *Handler, method, host, uri string, hdr ...string) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.SetHost(host)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	h.ServeHTTP(&ctx)
	return &ctx
}

func TestStatsCountOutcomesAndSites(t *testing.T) {
	e := newRealEdge(t)
	st := e.h.stats
	if err := e.blobs.WaitCompressed(t.Context()); err != nil {
		t.Fatal(err)
	}
	host := "bench." + testDomain
	serveCtx(e.h, "GET", host, "/1k.bin")
	serveCtx(e.h, "GET", host, "/1k.bin")
	serveCtx(e.h, "GET", host, "/256k.bin")
	serveCtx(e.h, "HEAD", host, "/1k.bin")
	serveCtx(e.h, "GET", host, "/1k.bin", "If-None-Match", "*")
	serveCtx(e.h, "GET", host, "/nope")
	serveCtx(e.h, "GET", "unknown."+testDomain, "/")
	serveCtx(e.h, "POST", host, "/")
	serveCtx(e.h, "GET", host, "/page.html", "Accept-Encoding", "br")

	rows := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"small file from memory", map[string]string{"method": "GET", "code": "2xx", "outcome": "memory"}, 3},
		{"large file from disk", map[string]string{"method": "GET", "code": "2xx", "outcome": "disk"}, 1},
		{"head", map[string]string{"method": "HEAD", "code": "2xx", "outcome": "memory"}, 1},
		{"304", map[string]string{"method": "GET", "code": "3xx", "outcome": "not_modified"}, 1},
		{"404s", map[string]string{"method": "GET", "code": "4xx", "outcome": "not_found"}, 2},
		{"405", map[string]string{"method": "other", "code": "4xx", "outcome": "refused"}, 1},
	}
	for _, r := range rows {
		if got := gathered(t, st, "atoll_edge_requests_total", r.labels); got != r.want {
			t.Errorf("%s: atoll_edge_requests_total%v = %v, want %v", r.name, r.labels, got, r.want)
		}
	}
	if got := gathered(t, st, "atoll_edge_request_duration_seconds", nil); got != 9 {
		t.Errorf("latency samples = %v, want 9", got)
	}
	if got := gathered(t, st, "atoll_edge_response_bytes_total", map[string]string{"encoding": "identity"}); got < 2<<10+256<<10 {
		t.Errorf("identity bytes = %v, want at least %d", got, 2<<10+256<<10)
	}
	if got := gathered(t, st, "atoll_edge_response_bytes_total", map[string]string{"encoding": "br"}); got <= 0 {
		t.Errorf("br bytes = %v, want > 0", got)
	}
	// 7 requests resolved to the site (the unknown host and the POST did
	// not).
	if got := st.Site("bench"); got.Requests != 7 || got.Bytes < 2<<10+256<<10 {
		t.Errorf("Site(bench) = %+v, want 7 requests and at least %d bytes", got, 2<<10+256<<10)
	}
	if got := gathered(t, st, "atoll_site_requests_total", nil); got != -1 {
		t.Errorf("per-site series exported without site labels: %v", got)
	}
}

func TestStatsSiteLabels(t *testing.T) {
	st := NewStats(true)
	st.site("blog").requests.Add(3)
	if got := gathered(t, st, "atoll_site_requests_total", map[string]string{"site": "blog"}); got != 3 {
		t.Errorf("atoll_site_requests_total{site=blog} = %v, want 3", got)
	}
}

// TestEdgeZeroAllocsWithStats: with metrics on, a cached answer still
// allocates nothing.
func TestEdgeZeroAllocsWithStats(t *testing.T) {
	e := newRealEdge(t)
	var req fasthttp.Request
	req.SetRequestURI("/1k.bin")
	req.SetHost("bench." + testDomain)
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	e.h.ServeHTTP(&ctx) // warm the caches
	ctx.Response.Reset()
	allocs := testing.AllocsPerRun(100, func() {
		e.h.ServeHTTP(&ctx)
		ctx.Response.Reset()
	})
	if allocs != 0 {
		t.Errorf("allocs per request = %v, want 0", allocs)
	}
}

// fetchingBlobs is storeBlobs whose Stat says, as node's does, that the
// blob had to be fetched from a peer first.
type fetchingBlobs struct{ storeBlobs }

func (b fetchingBlobs) Stat(ctx context.Context, hash string) (blobstore.Info, error) {
	MarkFetched(ctx)
	return b.storeBlobs.Stat(ctx, hash)
}

func TestStatsPeerOutcome(t *testing.T) {
	e := newRealEdge(t)
	h, err := New(Config{Domain: testDomain, Stats: NewStats(false)}, e.fsm, fetchingBlobs{storeBlobs{e.blobs}})
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	serveCtx(e.h, "GET", "bench."+testDomain, "/1k.bin")
	serveCtx(e.h, "GET", "bench."+testDomain, "/1k.bin") // the blob's info is cached now: no Stat
	if got := gathered(t, h.stats, "atoll_edge_requests_total", map[string]string{"outcome": "peer"}); got != 1 {
		t.Errorf("peer outcomes = %v, want 1", got)
	}
	if got := gathered(t, h.stats, "atoll_edge_requests_total", map[string]string{"outcome": "memory"}); got != 1 {
		t.Errorf("memory outcomes = %v, want 1", got)
	}
}
