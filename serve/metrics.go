package serve

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll"
)

// Outcome says how the edge answered a request, as counted by Stats and
// written in the access log.
type Outcome uint8

// The outcomes, in the order of outcomeNames.
const (
	OutcomeMemory      Outcome = iota // a 200/206/404 page whose bytes came from memory
	OutcomeDisk                       // bytes streamed from the local disk
	OutcomePeer                       // the blob was first fetched from a peer
	OutcomeNotModified                // 304
	OutcomeRedirect                   // a 3xx other than 304
	OutcomeNotFound                   // 404: unknown host or site, or missing file
	OutcomeRefused                    // other 4xx: 405, 412, 416
	OutcomeError                      // 5xx
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"memory", "disk", "peer", "not_modified", "redirect", "not_found", "refused", "error"}

// String returns the outcome's label value, e.g. "memory".
func (o Outcome) String() string {
	if o < numOutcomes {
		return outcomeNames[o]
	}
	return "unknown"
}

// Methods and status classes, as label values.
var (
	methodNames = [...]string{"GET", "HEAD", "other"}
	classNames  = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}
	codingNames = [...]string{"identity", "br", "zstd", "gzip", "other"}
)

// LatencyBuckets are the upper bounds, in seconds, of the edge's latency
// histogram (atoll_edge_request_duration_seconds).
var LatencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// fetchedKey marks, as a user value of the request, that the request's blob
// came from a peer (MarkFetched).
const fetchedKey = "atoll.serve.fetched"

// MarkFetched records that the blob answering the edge request ctx had to be
// fetched from a peer first, so that the request counts as OutcomePeer. A
// Blobs implementation calls it with the context it was given; any other
// context is ignored.
func MarkFetched(ctx context.Context) {
	if rc, ok := ctx.(*fasthttp.RequestCtx); ok {
		rc.SetUserValue(fetchedKey, true)
	}
}

// siteStats are the live counters of one site.
type siteStats struct {
	requests, bytes atomic.Uint64
}

// RequestInfo is what the edge knows of one finished request, handed to an
// AccessLogger.
type RequestInfo struct {
	Ctx      *fasthttp.RequestCtx
	Site     string
	Deploy   string
	Status   int
	Bytes    int64
	Duration time.Duration
	Outcome  Outcome
}

// AccessLogger receives every edge request once it is answered. Log must
// not block and must not keep info or anything it points to.
type AccessLogger interface {
	Log(info *RequestInfo)
}

// Stats counts what the edge answers: requests by method, status class and
// outcome, bytes by content coding, a latency histogram, and compact
// per-site counters (two atomic words per site, no Prometheus series unless
// asked for). Recording a request is a handful of atomic additions: no lock,
// no allocation. Stats is a prometheus.Collector; collecting reads the
// atomics and takes no lock the edge takes. A Stats is safe for concurrent
// use; make one with NewStats.
type Stats struct {
	requests [len(methodNames)][len(classNames)][numOutcomes]atomic.Uint64
	bytes    [len(codingNames)]atomic.Uint64
	latency  prometheus.Histogram
	sites    sync.Map // site name -> *siteStats
	access   atomic.Pointer[accessHolder]

	siteLabels bool
	otf        otfStats   // onthefly.go
	index      indexStats // indexset.go

	descRequests, descBytes, descSiteReq, descSiteBytes, descSites *prometheus.Desc
}

type accessHolder struct{ AccessLogger }

// NewStats returns empty Stats. With siteLabels, per-site counters are also
// exported as Prometheus series labelled by site (small installations
// only: one series pair per site).
func NewStats(siteLabels bool) *Stats {
	return &Stats{
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "atoll_edge_request_duration_seconds",
			Help:    "Time the edge took to answer a request, up to handing the body to the connection.",
			Buckets: LatencyBuckets,
		}),
		siteLabels:    siteLabels,
		otf:           newOTFStats(),
		index:         newIndexStats(),
		descRequests:  prometheus.NewDesc("atoll_edge_requests_total", "Edge requests answered, by method, status class and outcome.", []string{"method", "code", "outcome"}, nil),
		descBytes:     prometheus.NewDesc("atoll_edge_response_bytes_total", "Body bytes the edge answered with, by content coding (HEAD answers count 0).", []string{"encoding"}, nil),
		descSiteReq:   prometheus.NewDesc("atoll_site_requests_total", "Edge requests per site (only with --metrics-site-labels).", []string{"site"}, nil),
		descSiteBytes: prometheus.NewDesc("atoll_site_response_bytes_total", "Edge body bytes per site (only with --metrics-site-labels).", []string{"site"}, nil),
		descSites:     prometheus.NewDesc("atoll_edge_sites_counted", "Sites this node keeps per-site request counters for.", nil, nil),
	}
}

// SetAccessLog sends every later request to l; nil stops it.
func (s *Stats) SetAccessLog(l AccessLogger) {
	if l == nil {
		s.access.Store(nil)
		return
	}
	s.access.Store(&accessHolder{l})
}

// site returns the counters of the named site, made on first use. The edge
// calls it when it resolves a host, not per request.
func (s *Stats) site(name string) *siteStats {
	if name == "" {
		return nil
	}
	if v, ok := s.sites.Load(name); ok {
		return v.(*siteStats)
	}
	v, _ := s.sites.LoadOrStore(name, new(siteStats))
	return v.(*siteStats)
}

// Site returns the named site's counters on this node; zero when the edge
// has not answered for it since the node started.
func (s *Stats) Site(name string) atoll.SiteCounts {
	v, ok := s.sites.Load(name)
	if !ok {
		return atoll.SiteCounts{}
	}
	st := v.(*siteStats)
	return atoll.SiteCounts{Requests: st.requests.Load(), Bytes: st.bytes.Load()}
}

// observe records one answered request. dv is the deploy it was resolved
// to, nil when none was. It is the edge's only per-request hook. The
// latency runs from ctx.Time(), which the server reads as it hands the
// request to the handler (no clock read of our own at the start; a server
// with LazyRequestTime, or a ctx without a time, records no latency).
func (s *Stats) observe(ctx *fasthttp.RequestCtx, dv **deployView) {
	if s == nil {
		return
	}
	var took time.Duration
	if start := ctx.Time(); !start.IsZero() {
		took = time.Since(start)
		s.latency.Observe(took.Seconds())
	}
	status := ctx.Response.StatusCode()
	out := outcomeOf(ctx, status)
	var n int64
	switch {
	case ctx.IsHead():
	case ctx.Response.IsBodyStream():
		n = max(int64(ctx.Response.Header.ContentLength()), 0) // -1: chunked, unknown up front
	default:
		n = int64(len(ctx.Response.Body()))
	}
	s.requests[methodIndex(ctx)][classIndex(status)][out].Add(1)
	s.bytes[codingIndexOf(ctx.Response.Header.ContentEncoding())].Add(uint64(n))
	var site, deploy string
	if d := *dv; d != nil {
		site, deploy = d.site, d.id
		if d.stats != nil {
			d.stats.requests.Add(1)
			d.stats.bytes.Add(uint64(n))
		}
	}
	if a := s.access.Load(); a != nil {
		info := RequestInfo{Ctx: ctx, Site: site, Deploy: deploy, Status: status, Bytes: n, Duration: took, Outcome: out}
		a.Log(&info)
	}
}

func outcomeOf(ctx *fasthttp.RequestCtx, status int) Outcome {
	switch {
	case status >= 500:
		return OutcomeError
	case status == fasthttp.StatusNotModified:
		return OutcomeNotModified
	case status >= 300 && status < 400:
		return OutcomeRedirect
	case status == fasthttp.StatusNotFound:
		return OutcomeNotFound
	case status >= 400:
		return OutcomeRefused
	case ctx.UserValue(fetchedKey) != nil:
		return OutcomePeer
	case ctx.Response.IsBodyStream():
		return OutcomeDisk
	}
	return OutcomeMemory
}

func methodIndex(ctx *fasthttp.RequestCtx) int {
	switch {
	case ctx.IsGet():
		return 0
	case ctx.IsHead():
		return 1
	}
	return 2
}

func classIndex(status int) int {
	return min(max(status/100, 1), 5) - 1
}

func codingIndexOf(enc []byte) int {
	switch string(enc) { // no allocation: the conversion only feeds the switch
	case "":
		return 0
	case "br":
		return 1
	case "zstd":
		return 2
	case "gzip":
		return 3
	}
	return 4
}

// Describe implements prometheus.Collector.
func (s *Stats) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.descRequests
	ch <- s.descBytes
	ch <- s.descSites
	ch <- s.otf.desc
	ch <- s.index.descDeploys
	ch <- s.index.descBytes
	if s.siteLabels {
		ch <- s.descSiteReq
		ch <- s.descSiteBytes
	}
	s.latency.Describe(ch)
}

// Collect implements prometheus.Collector: the request counters seen so
// far (combinations never seen are left out), bytes by coding, the
// histogram, and per-site series when asked for.
func (s *Stats) Collect(ch chan<- prometheus.Metric) {
	for m := range s.requests {
		for c := range s.requests[m] {
			for o := range s.requests[m][c] {
				if v := s.requests[m][c][o].Load(); v > 0 {
					ch <- prometheus.MustNewConstMetric(s.descRequests, prometheus.CounterValue, float64(v), methodNames[m], classNames[c], outcomeNames[o])
				}
			}
		}
	}
	for i := range s.bytes {
		ch <- prometheus.MustNewConstMetric(s.descBytes, prometheus.CounterValue, float64(s.bytes[i].Load()), codingNames[i])
	}
	s.latency.Collect(ch)
	s.otf.collect(ch)
	s.index.collect(ch)
	sites := 0
	s.sites.Range(func(k, v any) bool {
		sites++
		if s.siteLabels {
			st := v.(*siteStats)
			ch <- prometheus.MustNewConstMetric(s.descSiteReq, prometheus.CounterValue, float64(st.requests.Load()), k.(string))
			ch <- prometheus.MustNewConstMetric(s.descSiteBytes, prometheus.CounterValue, float64(st.bytes.Load()), k.(string))
		}
		return true
	})
	ch <- prometheus.MustNewConstMetric(s.descSites, prometheus.GaugeValue, float64(sites))
}

var _ prometheus.Collector = (*Stats)(nil)
