package serve

import (
	"fmt"
	"io"
	"runtime"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll/blobstore"
)

// On-the-fly compression covers the time between a publish and the moment
// the blob store's background compressor has made a blob's stored variants
// (blobstore.Info.Pending): a client that accepts gzip gets a gzip answer
// made for its request, not stored, instead of the identity bytes.
//
// Which blobs: exactly those the compressor has queued (Pending, no variant
// yet). The compressor's rule decides what is compressible (big enough, and
// content that does not sniff as a compressed format) and the store records
// that decision as the pending marker, so the edge applies the same rule
// without a copy of it, and stops compressing a blob per request as soon as
// the compressor has decided, whether or not it kept variants.
//
// Which coding: gzip at level 1 (klauspost/compress's BestSpeed). Every
// client that sends br sends gzip too. BenchmarkOnTheFlyCodings (HTML-like
// text, one core of the shared bench machine, writers reused): gzip 1 ran
// at 100-150 MB/s for a ratio of 0.29-0.31; brotli quality 1 at 50-77 MB/s
// for 0.27-0.31, quality 4 at 12-27 MB/s; zstd fastest as fast as gzip 1
// for 0.27-0.31, but fewer clients accept it. The stored variants, made
// later at better levels, win back the few percent.
//
// Bounds, since any visitor can ask:
//   - only files up to MaxOnTheFlySize, so one request costs at most about
//     10 ms of CPU and that much memory for the answer;
//   - at most half the cores compress at once (Handler.otfSlots); each slot
//     owns its gzip writer and read buffer, made on first use and reused, so
//     memory is bounded by the slots, not by the request rate;
//   - a request that finds every slot busy is answered with the identity
//     bytes at once: no visitor ever waits behind a compressor.
//
// The answer has its own entity tag, the weak W/"<hash>-gzip": its bytes
// differ from those of the stored gzip variant that replaces it later, but
// it is semantically the same representation, so a cache revalidating with
// If-None-Match (weak comparison) gets a 304 from either, and If-Match or
// If-Range (strong comparison) never match it. Range requests are answered
// from the identity bytes, as for stored variants.

// MaxOnTheFlySize is the largest file the edge compresses per request
// while its stored variants are being made; bigger ones are sent as they
// are until then.
const MaxOnTheFlySize = 1 << 20

// otfGzipLevel: see above.
const otfGzipLevel = gzip.BestSpeed

// otfReadBuffer is the read buffer of a slot, for a file not in memory.
const otfReadBuffer = 32 << 10

// otfSlot is one permission to compress, with its reusable state.
type otfSlot struct {
	zw  *gzip.Writer
	buf []byte
}

// newOTFSlots returns the slots of a Handler: half the cores, at least one.
// Each entry is nil until first used.
func newOTFSlots() chan *otfSlot {
	n := max(1, runtime.GOMAXPROCS(0)/2)
	c := make(chan *otfSlot, n)
	for range n {
		c <- nil
	}
	return c
}

// onTheFlyEligible reports whether a blob is compressed per request: it
// is queued for its variants, has none yet, and is within the size bound.
func onTheFlyEligible(info blobstore.Info) bool {
	return info.Pending && len(info.Variants) == 0 && info.Size <= MaxOnTheFlySize
}

// acceptsGzip reports whether gzip is acceptable and not ranked below
// identity, by the rules choose applies to stored variants.
func (ae acceptEncoding) acceptsGzip() bool {
	q := ae.coding[codingIndex(blobstore.EncodingGzip)]
	if q == qUnset {
		q = max(ae.star, 0)
	}
	return q > 0 && ae.identity <= q
}

// serveOnTheFly answers a whole-file GET or HEAD of an eligible blob with
// a gzip body made now. It reports false, having set nothing, when the
// answer is the identity bytes after all (gzip not accepted, every slot
// busy, or a result not smaller than the file); the caller then serves
// those.
func (h *Handler) serveOnTheFly(ctx *fasthttp.RequestCtx, dv *deployView, r *pathRoute, be *blobEntry, ae acceptEncoding) bool {
	if !ae.acceptsGzip() {
		return false
	}
	var slot *otfSlot
	select {
	case slot = <-h.otfSlots:
	default:
		h.stats.countOnTheFly(otfBusy)
		return false
	}
	defer func() { h.otfSlots <- slot }()

	resp := &ctx.Response.Header
	etag := "W/" + be.etag[reprIndex(blobstore.EncodingGzip)]
	switch evalPreconditions(&ctx.Request.Header, etag, dv.modified) {
	case preconditionNotModified:
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		h.setValidators(resp, []byte(etag), dv.lastModified, true)
		return true
	case preconditionFailed:
		ctx.Error("412 Precondition Failed", fasthttp.StatusPreconditionFailed)
		resp.Set(fasthttp.HeaderXContentTypeOptions, "nosniff")
		return true
	}

	if slot == nil {
		zw, err := gzip.NewWriterLevel(nil, otfGzipLevel)
		if err != nil {
			panic(err) // only a bad level fails, and this one is constant
		}
		slot = &otfSlot{zw: zw, buf: make([]byte, otfReadBuffer)}
	}
	n, err := h.gzipBody(ctx, be, slot)
	if err != nil {
		ctx.Response.ResetBody()
		h.failOpen(ctx, dv, r, be, err, "")
		return true
	}
	if n >= be.info.Size {
		ctx.Response.ResetBody()
		h.stats.countOnTheFly(otfNotSmaller)
		return false
	}
	h.stats.countOnTheFly(otfCompressed)
	if ctx.IsHead() {
		ctx.Response.ResetBody()
		setContentLength(ctx, n)
	}
	h.setRepresentation(resp, r.ctype, []byte(etag), blobstore.EncodingGzip, dv.lastModified, true)
	return true
}

// gzipBody compresses the identity bytes of be into the response body,
// from memory when they are cached there, else from the blob's file, and
// returns the body's size.
func (h *Handler) gzipBody(ctx *fasthttp.RequestCtx, be *blobEntry, slot *otfSlot) (int64, error) {
	zw := slot.zw
	zw.Reset(ctx.Response.BodyWriter())
	defer zw.Reset(io.Discard) // the slot keeps no reference to the response
	size := be.info.Size
	if body, cached, err := h.cachedBody(ctx, be, "", size); cached {
		if err != nil {
			return 0, err
		}
		if _, err := zw.Write(body); err != nil {
			return 0, err
		}
	} else {
		f, n, err := h.blobs.Open(ctx, be.info.Hash, "")
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if n != size {
			return 0, fmt.Errorf("size %d, stat said %d", n, size)
		}
		// A LimitedReader has no WriteTo, so the copy uses the slot's
		// buffer rather than allocating one.
		if _, err := io.CopyBuffer(zw, &io.LimitedReader{R: f, N: size}, slot.buf); err != nil {
			return 0, err
		}
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return int64(len(ctx.Response.Body())), nil
}

// Outcomes of a request that could be compressed on the fly, as counted in
// atoll_edge_on_the_fly_total.
const (
	otfCompressed = iota // answered with gzip made for it
	otfBusy              // every slot busy: identity bytes
	otfNotSmaller        // gzip was not smaller: identity bytes
	numOTFResults
)

var otfResultNames = [numOTFResults]string{"compressed", "busy", "not_smaller"}

// otfStats counts on-the-fly compressions for Stats.
type otfStats struct {
	n    [numOTFResults]atomic.Uint64
	desc *prometheus.Desc
}

func newOTFStats() otfStats {
	return otfStats{desc: prometheus.NewDesc("atoll_edge_on_the_fly_total",
		"Requests for a file whose compressed variants were not made yet, from a client accepting gzip, by result.", []string{"result"}, nil)}
}

func (o *otfStats) collect(ch chan<- prometheus.Metric) {
	for i := range o.n {
		ch <- prometheus.MustNewConstMetric(o.desc, prometheus.CounterValue, float64(o.n[i].Load()), otfResultNames[i])
	}
}

// countOnTheFly counts one result; a nil Stats counts nothing.
func (s *Stats) countOnTheFly(result int) {
	if s != nil {
		s.otf.n[result].Add(1)
	}
}
