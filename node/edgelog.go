package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll/listen"
)

// edgeLogEvery is how often the edge logs one kind of fasthttp message at
// most; the next line says how many were left out in between.
const edgeLogEvery = listen.LogEvery

// edgeLogger is the edge's fasthttp.Logger. fasthttp's messages may quote
// what a visitor sent (a malformed request's raw headers: cookies, bearer
// tokens), and a visitor can make it log as fast as it sends: so it keeps
// of a message's arguments only numbers, addresses and the kind of an error
// (edgeLogArg), and writes each kind of message (its format) at most once
// per edgeLogEvery.
type edgeLogger struct {
	log *slog.Logger

	mu    sync.Mutex
	kinds map[string]*edgeLogKind // by format: fasthttp's are constants
}

type edgeLogKind struct {
	last    time.Time
	dropped int
}

var _ fasthttp.Logger = (*edgeLogger)(nil)

func newEdgeLogger(log *slog.Logger) *edgeLogger {
	return &edgeLogger{log: log.With("component", "edge"), kinds: make(map[string]*edgeLogKind)}
}

func (l *edgeLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	k := l.kinds[format]
	if k == nil {
		k = &edgeLogKind{}
		l.kinds[format] = k
	}
	now := time.Now()
	if !k.last.IsZero() && now.Sub(k.last) < edgeLogEvery {
		k.dropped++
		l.mu.Unlock()
		return
	}
	dropped := k.dropped
	k.last, k.dropped = now, 0
	l.mu.Unlock()

	safe := make([]any, len(args))
	for i, a := range args {
		safe[i] = edgeLogArg(a)
	}
	l.log.Warn(fmt.Sprintf(format, safe...), "like_lines_left_out", dropped)
}

// edgeLogArg is what of a fasthttp log argument may be logged: numbers and
// addresses as they are, an error as its kind, anything else redacted.
func edgeLogArg(a any) any {
	switch v := a.(type) {
	case int, int64, uint64, float64, time.Duration, net.IP, net.Addr:
		return v
	case error:
		return edgeErrorKind(v)
	default:
		return "[redacted]"
	}
}

// edgeErrorKind names the kind of an error fasthttp met reading or writing
// a request, without its text (which may quote the request).
func edgeErrorKind(err error) string {
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return "request body too large"
	case errors.As(err, &small):
		return "request headers too large"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, net.ErrClosed):
		return "connection closed"
	default:
		return "malformed or cut request"
	}
}
