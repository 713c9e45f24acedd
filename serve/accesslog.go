package serve

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// DefaultAccessLogBuffer is the bytes of access log lines an AccessLog
// holds while its writer is busy; lines that do not fit are dropped.
const DefaultAccessLogBuffer = 1 << 20

// AccessLog writes one JSON line per edge request (RequestInfo) to a file
// or a stream. The edge never waits for it: Log appends the line to a
// bounded in-memory buffer (a short critical section, no I/O) that a
// goroutine of the AccessLog writes out; when the buffer is full because
// the writer falls behind, the line is dropped and counted (Dropped). The
// fields of a line are, in order: time (RFC 3339, UTC, nanoseconds), host,
// site, deploy, method, path, status, bytes, duration_ms, remote, user_agent,
// referer, outcome. site and deploy are "" for a request that resolved to
// no deploy.
//
// An AccessLog on a file reopens it on Reopen (for logrotate: rename the
// file, then signal the node). Close flushes what is buffered and closes
// the file. An AccessLog is safe for concurrent use.
type AccessLog struct {
	path string // "" when writing to a stream that is never reopened
	max  int
	log  *slog.Logger

	mu      sync.Mutex
	buf     []byte
	lines   int // in buf
	closed  bool
	wake    chan struct{}
	reopen  chan chan struct{}
	done    chan struct{}
	stopped chan struct{}

	written, dropped atomic.Uint64

	scratch sync.Pool // *[]byte: one line being formatted
}

// AccessLogConfig configures an AccessLog.
type AccessLogConfig struct {
	// Path is the file lines are appended to (created 0640 if missing),
	// or "-" for Stdout.
	Path string
	// Stdout is where "-" writes; nil means os.Stdout.
	Stdout io.Writer
	// Buffer bounds the bytes held while the writer is busy; 0 means
	// DefaultAccessLogBuffer.
	Buffer int
	// Logger receives write errors (component=access-log); nil discards.
	Logger *slog.Logger
}

// NewAccessLog opens cfg.Path and starts the AccessLog's writer.
func NewAccessLog(cfg AccessLogConfig) (*AccessLog, error) {
	if cfg.Path == "" {
		return nil, fmt.Errorf("%w: access log path is empty (give a file or -)", ErrInvalidConfig)
	}
	a := &AccessLog{
		max:     cfg.Buffer,
		log:     cfg.Logger,
		wake:    make(chan struct{}, 1),
		reopen:  make(chan chan struct{}),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	if a.max <= 0 {
		a.max = DefaultAccessLogBuffer
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.log = a.log.With("component", "access-log")
	a.scratch.New = func() any { b := make([]byte, 0, 512); return &b }
	var w io.Writer
	if cfg.Path == "-" {
		w = cfg.Stdout
		if w == nil {
			w = os.Stdout
		}
	} else {
		a.path = cfg.Path
		f, err := openAccessLog(cfg.Path)
		if err != nil {
			return nil, err
		}
		w = f
	}
	go a.run(w)
	return a, nil
}

func openAccessLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open access log: %w", err)
	}
	return f, nil
}

// Log formats info as one line and queues it; it drops the line when the
// buffer is full or the log closed. It implements AccessLogger.
func (a *AccessLog) Log(info *RequestInfo) {
	bp := a.scratch.Get().(*[]byte)
	line := appendAccessLine((*bp)[:0], info, time.Now())
	a.mu.Lock()
	ok := !a.closed && len(a.buf)+len(line) <= a.max
	if ok {
		a.buf = append(a.buf, line...)
		a.lines++
	}
	a.mu.Unlock()
	*bp = line
	a.scratch.Put(bp)
	if !ok {
		a.dropped.Add(1)
		return
	}
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Dropped returns how many lines were dropped because the writer fell
// behind (or could not write them).
func (a *AccessLog) Dropped() uint64 { return a.dropped.Load() }

// Written returns how many lines were written out.
func (a *AccessLog) Written() uint64 { return a.written.Load() }

// Reopen has the writer write what is buffered, then close and reopen the
// file; it returns once that is done (at once after Close). A no-op for
// "-".
func (a *AccessLog) Reopen() {
	ack := make(chan struct{})
	select {
	case a.reopen <- ack:
		<-ack
	case <-a.stopped:
	}
}

// Close writes what is buffered, closes the file and stops the writer.
// Lines logged afterwards are dropped.
func (a *AccessLog) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		<-a.stopped
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	close(a.done)
	<-a.stopped
	return nil
}

// run is the writer: it swaps the buffer out and writes it until Close.
func (a *AccessLog) run(w io.Writer) {
	defer close(a.stopped)
	var spare []byte
	for {
		var stop bool
		var reopen chan struct{}
		select {
		case <-a.wake:
		case reopen = <-a.reopen:
		case <-a.done:
			stop = true
		}
		a.mu.Lock()
		out, lines := a.buf, a.lines
		a.buf, a.lines = spare[:0], 0
		a.mu.Unlock()
		if len(out) > 0 {
			if _, err := w.Write(out); err != nil {
				a.dropped.Add(uint64(lines))
				a.log.Error("write access log", "err", err, "lines_dropped", lines)
			} else {
				a.written.Add(uint64(lines))
			}
		}
		spare = out
		if stop {
			if c, ok := w.(io.Closer); ok && a.path != "" {
				_ = c.Close()
			}
			return
		}
		if reopen != nil {
			if a.path != "" {
				w = a.reopenFile(w)
			}
			close(reopen)
		}
	}
}

// reopenFile closes w and opens the path again; on failure it keeps
// writing to w, which still works when only the rename happened.
func (a *AccessLog) reopenFile(w io.Writer) io.Writer {
	f, err := openAccessLog(a.path)
	if err != nil {
		a.log.Error("reopen access log: still writing to the old file", "err", err)
		return w
	}
	if c, ok := w.(io.Closer); ok {
		if err := c.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			a.log.Warn("close rotated access log", "err", err)
		}
	}
	return f
}

// appendAccessLine appends the JSON line of info, logged at now.
func appendAccessLine(b []byte, info *RequestInfo, now time.Time) []byte {
	ctx := info.Ctx
	b = append(b, `{"time":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","host":`...)
	b = appendJSONString(b, ctx.Host())
	b = append(b, `,"site":`...)
	b = appendJSONString(b, []byte(info.Site))
	b = append(b, `,"deploy":`...)
	b = appendJSONString(b, []byte(info.Deploy))
	b = append(b, `,"method":`...)
	b = appendJSONString(b, ctx.Method())
	b = append(b, `,"path":`...)
	b = appendJSONString(b, ctx.Path())
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(info.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, info.Bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(info.Duration.Microseconds())/1e3, 'f', 3, 64)
	b = append(b, `,"remote":`...)
	b = appendJSONString(b, []byte(ctx.RemoteIP().String()))
	b = append(b, `,"user_agent":`...)
	b = appendJSONString(b, ctx.UserAgent())
	b = append(b, `,"referer":`...)
	b = appendJSONString(b, ctx.Referer())
	b = append(b, `,"outcome":"`...)
	b = append(b, info.Outcome.String()...)
	return append(b, "\"}\n"...)
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

var _ AccessLogger = (*AccessLog)(nil)
