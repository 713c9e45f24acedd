package node

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"
)

// Connection limits: what one client may hold of the API and of the edge.
//
// # API (net/http)
//
// APIReadHeaderTimeout bounds the request line and headers, so a client
// that sends its headers a byte at a time (slowloris) is disconnected;
// APIIdleTimeout bounds a kept-alive connection between requests;
// APIMaxHeaderBytes bounds the headers (431 beyond; net/http allows 4 KiB
// of slack on top).
//
// There is deliberately no whole-request ReadTimeout or WriteTimeout: a
// 4 GiB tar upload or a large snapshot download may rightly take long on a
// slow link, and net/http's WriteTimeout also counts the time the handler
// works before it answers (a big tar is checked and stored first). Bodies
// instead have to keep moving, both ways (paced below):
//
//   - a request body must have arrived within APIReadTimeout plus its size
//     divided by APIMinRate, counted from the handler's first read, and no
//     read may wait more than APIReadTimeout for its bytes. A client that
//     stalls (whatever it sent before: a fast burst earns no credit for a
//     pause), or drips its body at a few bytes per second, is cut off; one
//     on a slow link that keeps up the minimum rate is not;
//   - each write of a response must be taken by the client within
//     APIWriteTimeout plus its size divided by APIMinRate. A client that
//     stops reading is cut off; the handler's own pauses between writes do
//     not count.
//
// The deadlines are set per read and per write with http.ResponseController
// and cleared when the request body ends (net/http then starts a background
// read on the connection, which an expired deadline would turn into a
// cancelled request). Body sizes are bounded per route: builder's
// MaxBlobBytes, MaxTarBytes, MaxJSONBytes (manifests) and MaxFiles, each a
// 413.
//
// # Edge (fasthttp)
//
// The edge serves GET and HEAD only. EdgeReadTimeout bounds reading a
// request (line and headers: it takes no body), EdgeWriteTimeout writing a
// response, EdgeIdleTimeout a kept-alive connection. EdgeMaxHeaderBytes is
// fasthttp's read buffer, which is also its header limit (431 beyond). A
// request that carries a body is refused with 413: fasthttp reads at most
// edgeMaxBodyBytes of it, refuseBody the rest. EdgeConcurrency bounds the
// connections served at once (503 beyond) and EdgeMaxConnsPerIP those of
// one client address (more are closed as soon as accepted). Both default
// to what fits the process's descriptor limit (edgeConnDefaults), so that
// the edge's connections cannot take the descriptors the rest of the node
// needs; package listen handles running out all the same.

// HTTPLimits are the timeouts and size limits of the node's API and edge
// listeners. Zero values take DefaultHTTPLimits'.
type HTTPLimits struct {
	APIReadHeaderTimeout time.Duration
	APIReadTimeout       time.Duration // grace of a request body, on top of size/APIMinRate
	APIWriteTimeout      time.Duration // grace of each response write, on top of size/APIMinRate
	APIMinRate           int64         // bytes per second a body must average, both ways
	APIIdleTimeout       time.Duration
	APIMaxHeaderBytes    int

	EdgeReadTimeout    time.Duration
	EdgeWriteTimeout   time.Duration
	EdgeIdleTimeout    time.Duration
	EdgeMaxHeaderBytes int
	EdgeConcurrency    int // 0: fit to the descriptor limit (edgeConnDefaults)
	EdgeMaxConnsPerIP  int // 0: fit to the descriptor limit; NoConnLimit: none
}

// NoConnLimit as EdgeMaxConnsPerIP lets one client address hold as many
// edge connections as EdgeConcurrency allows (an edge behind a proxy sees
// one address).
const NoConnLimit = -1

// DefaultHTTPLimits returns the documented defaults.
func DefaultHTTPLimits() HTTPLimits {
	return HTTPLimits{
		APIReadHeaderTimeout: 10 * time.Second,
		APIReadTimeout:       time.Minute,
		APIWriteTimeout:      time.Minute,
		APIMinRate:           16 << 10,
		APIIdleTimeout:       2 * time.Minute,
		APIMaxHeaderBytes:    64 << 10,

		EdgeReadTimeout:    30 * time.Second,
		EdgeWriteTimeout:   5 * time.Minute,
		EdgeIdleTimeout:    2 * time.Minute,
		EdgeMaxHeaderBytes: 8 << 10,
	}
}

// edgeConnDefaults are EdgeConcurrency and EdgeMaxConnsPerIP for a process
// that may hold nofile descriptors (0: unknown). A quarter of them, at
// least 64, is left to the rest of the node (Raft, the API, peers, blob
// files being written); an edge connection may take two (its socket and
// the blob file it sends), so the edge gets half of the rest, at most
// fasthttp's default of 262144; one client address gets an eighth of
// that, between 4 and 1024. At a limit of 1024: 384 and 48; at 1048576:
// 262144 and 1024.
func edgeConnDefaults(nofile uint64) (concurrency, perIP int) {
	if nofile == 0 {
		return fasthttp.DefaultConcurrency, 1024
	}
	reserve := max(nofile/4, 64)
	concurrency = fasthttp.DefaultConcurrency
	if nofile < reserve+2*uint64(concurrency) {
		concurrency = int(max(nofile, reserve+2)-reserve) / 2
	}
	return concurrency, min(max(concurrency/8, 4), 1024)
}

// edgeMaxBodyBytes is as much of a request body as the edge reads before
// refusing it (fasthttp refuses longer ones itself, before reading them).
const edgeMaxBodyBytes = 1 << 10

// withDefaults fills zero values from DefaultHTTPLimits, and the edge's
// connection limits from edgeConnDefaults(nofile), and rejects negative
// ones (but NoConnLimit).
func (l HTTPLimits) withDefaults(nofile uint64) (HTTPLimits, error) {
	d := DefaultHTTPLimits()
	d.EdgeConcurrency, d.EdgeMaxConnsPerIP = edgeConnDefaults(nofile)
	durations := []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&l.APIReadHeaderTimeout, d.APIReadHeaderTimeout}, {&l.APIReadTimeout, d.APIReadTimeout},
		{&l.APIWriteTimeout, d.APIWriteTimeout}, {&l.APIIdleTimeout, d.APIIdleTimeout},
		{&l.EdgeReadTimeout, d.EdgeReadTimeout}, {&l.EdgeWriteTimeout, d.EdgeWriteTimeout},
		{&l.EdgeIdleTimeout, d.EdgeIdleTimeout},
	}
	for _, x := range durations {
		if *x.v < 0 {
			return l, fmt.Errorf("%w: negative timeout %s", ErrConfig, *x.v)
		}
		if *x.v == 0 {
			*x.v = x.def
		}
	}
	ints := []struct {
		v   *int
		def int
	}{
		{&l.APIMaxHeaderBytes, d.APIMaxHeaderBytes}, {&l.EdgeMaxHeaderBytes, d.EdgeMaxHeaderBytes},
		{&l.EdgeConcurrency, d.EdgeConcurrency}, {&l.EdgeMaxConnsPerIP, d.EdgeMaxConnsPerIP},
	}
	for _, x := range ints {
		if x.v == &l.EdgeMaxConnsPerIP && *x.v == NoConnLimit {
			continue
		}
		if *x.v < 0 {
			return l, fmt.Errorf("%w: negative limit %d", ErrConfig, *x.v)
		}
		if *x.v == 0 {
			*x.v = x.def
		}
	}
	switch {
	case l.APIMinRate < 0:
		return l, fmt.Errorf("%w: negative minimum rate %d", ErrConfig, l.APIMinRate)
	case l.APIMinRate == 0:
		l.APIMinRate = d.APIMinRate
	}
	if l.EdgeMaxHeaderBytes < 1<<10 {
		return l, fmt.Errorf("%w: edge header limit %d bytes: want at least 1KiB", ErrConfig, l.EdgeMaxHeaderBytes)
	}
	return l, nil
}

// paced applies the API's body deadlines (see the top of this file) to
// every request next serves.
func paced(l HTTPLimits, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// net/http clears the write deadline after each response, and the
		// read deadline when it reads the next request.
		rc := http.NewResponseController(w)
		// A body must start within the grace even if the handler never
		// reads it: net/http reads what is left of it after the handler
		// (to reuse the connection), under this deadline or a later one
		// of pacedBody. An unsupported connection (a test recorder) is not
		// paced.
		var body *pacedBody
		if r.Body != nil && r.Body != http.NoBody {
			body = &pacedBody{ReadCloser: r.Body, rc: rc, grace: l.APIReadTimeout, rate: l.APIMinRate}
			if body.setDeadline(time.Now().Add(l.APIReadTimeout)) {
				r.Body = body
			} else {
				body = nil
			}
		}
		pw := &pacedWriter{ResponseWriter: w, rc: rc, body: body, grace: l.APIWriteTimeout, rate: l.APIMinRate}
		next.ServeHTTP(pw, r)
		pw.arm(0) // for net/http's flush after the handler
	})
}

// allowance is the time size bytes may take at rate bytes per second.
func allowance(size, rate int64) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(float64(size) / float64(rate) * float64(time.Second))
}

// pacedBody is a request body that must arrive within grace + size/rate
// of the first read, each read within grace of its start. Once it has ended no deadline is set again: net/http
// then reads the connection in the background (to notice a client going
// away; it clears the deadline when it starts), and a deadline expiring
// there would cancel the request. After a failed read the expired deadline
// stays, so that net/http does not wait for the rest of a stalled body
// after the handler either: it closes the connection.
type pacedBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	grace    time.Duration
	rate     int64
	start    time.Time
	n        int64
	ended    bool
	deadline time.Time // the read deadline now set, zero once ended
}

// setDeadline sets the connection's read deadline; false if the
// connection does not support it (a test's recorder).
func (b *pacedBody) setDeadline(t time.Time) bool {
	b.deadline = t
	return b.rc.SetReadDeadline(t) == nil
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.ended {
		return b.ReadCloser.Read(p)
	}
	if b.start.IsZero() {
		b.start = time.Now()
	}
	// The earlier of the two: the body's pace so far, and a stall of
	// grace from now. Only the time a read waits counts, never the
	// handler's work between reads.
	d := b.start.Add(b.grace + allowance(b.n, b.rate))
	if stall := time.Now().Add(b.grace); stall.Before(d) {
		d = stall
	}
	b.setDeadline(d)
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.ended, b.deadline = true, time.Time{}
	}
	return n, err
}

// pacedWriter gives each write of the response grace + size/rate to be
// taken by the client. Before net/http sends the response's first bytes it
// reads what the handler left of the request body (under the body's read
// deadline), so while the body is unfinished a write's time counts from
// that deadline rather than from now.
type pacedWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	body  *pacedBody // nil without one
	grace time.Duration
	rate  int64
}

func (w *pacedWriter) arm(size int64) {
	from := time.Now()
	if w.body != nil && w.body.deadline.After(from) {
		from = w.body.deadline
	}
	w.rc.SetWriteDeadline(from.Add(w.grace + allowance(size, w.rate)))
}

func (w *pacedWriter) Write(p []byte) (int, error) {
	w.arm(int64(len(p)))
	return w.ResponseWriter.Write(p)
}

// paceChunk is how much of a ReadFrom goes under one write deadline.
const paceChunk = 1 << 20

// ReadFrom keeps net/http's sendfile path for files (blob transfers to
// peers), a chunk per deadline.
func (w *pacedWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{w}, src)
	}
	var total int64
	for {
		w.arm(paceChunk)
		n, err := rf.ReadFrom(io.LimitReader(src, paceChunk))
		total += n
		if err != nil || n < paceChunk {
			return total, err
		}
	}
}

// Unwrap lets http.ResponseController (Flush, deadlines) reach the
// connection.
func (w *pacedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// refuseBody answers 413 to an edge request that carries a body: sites are
// read with GET and HEAD, which have none.
func refuseBody(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if ctx.Request.Header.ContentLength() > 0 || len(ctx.Request.Body()) > 0 {
			ctx.SetConnectionClose()
			ctx.Error("request body not allowed: this server only serves GET and HEAD\n", fasthttp.StatusRequestEntityTooLarge)
			return
		}
		next(ctx)
	}
}

// edgeError answers a request fasthttp could not read: fasthttp's own
// answers, except that a body over the limit is a 413 (fasthttp says 400).
func edgeError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		ctx.Error("request body not allowed: this server only serves GET and HEAD\n", fasthttp.StatusRequestEntityTooLarge)
	case errors.As(err, &small):
		ctx.Error("request headers too large\n", fasthttp.StatusRequestHeaderFieldsTooLarge)
	case errors.As(err, &ne) && ne.Timeout():
		ctx.Error("request timeout\n", fasthttp.StatusRequestTimeout)
	default:
		ctx.Error("malformed request\n", fasthttp.StatusBadRequest)
	}
}
