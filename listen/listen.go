// Package listen keeps a server accepting when the process runs out of file
// descriptors.
//
// A listener's Accept fails with EMFILE or ENFILE when the process (or the
// system) has no descriptor left for the new connection. fasthttp's Serve
// takes any accept error but a timeout as permanent and returns: the edge
// would never accept again. net/http retries, but only up to a second
// apart and without a word. Listener wraps a listener: Accept never
// returns such an error; it first sheds connections of its own server
// that wait for a request (Waiting), which are the cheapest to give up:
// their clients open them again; with none to shed it waits (5ms doubling
// to 1s, as net/http) and tries again. A server sheds only its own
// connections so that a flood on one port cannot cost the other its
// kept-alive clients (operators, peers, a monitor asking /readyz). While
// accepting fails, NotAccepting says why (node fails readiness with it);
// the first success ends the condition. The package never decides what a
// server serves; it only accepts and sheds.
package listen

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// LogEvery is the least time between two logged episodes of one
// listener's failing accepts.
const LogEvery = 10 * time.Second

// New wraps ln. name names it in logs and in NotAccepting; waiting, when
// not nil, is the server's connections that wait for a request, which Accept
// sheds first when descriptors run out.
func New(ln net.Listener, name string, log *slog.Logger, waiting *Waiting) *Listener {
	a := &Listener{Listener: ln, name: name, log: log}
	if waiting != nil {
		a.shed = waiting.Shed
	}
	return a
}

// acceptRetryMax is the longest wait between two failed accepts.
const acceptRetryMax = time.Second

// shedBatch is how many waiting connections the edge closes per failed
// accept (nginx reclaims 32 keep-alive connections at a time likewise).
const shedBatch = 32

// Listener is a listener whose Accept outlasts a shortage of descriptors
// (see the top of this file).
type Listener struct {
	net.Listener
	name string       // "edge", "api": for logs and readiness
	log  *slog.Logger // a line when the condition starts and ends, see logged
	shed func() int   // closes waiting connections, returns how many; nil: none

	failing atomic.Pointer[acceptFailure] // nil while accepting works

	// Under a sustained flood accepting fails and recovers over and over:
	// an episode is logged only LogEvery after the last one logged
	// (lastLogged), and its end only if its start was. Only Accept's
	// goroutine touches these.
	lastLogged time.Time
	logged     bool
	unlogged   int // episodes left out since the last one logged
}

// acceptFailure is why and since when a listener cannot accept.
type acceptFailure struct {
	err   error
	since time.Time
}

// Accept returns the next connection, waiting out errors a later accept
// may not meet (retryableAccept); any other error, a closed listener's
// included, it returns.
func (a *Listener) Accept() (net.Conn, error) {
	var wait time.Duration
	for {
		c, err := a.accept()
		if err == nil {
			a.recovered()
			return c, nil
		}
		if errors.Is(err, errAcceptWorks) {
			a.recovered()
			continue
		}
		if !retryableAccept(err) {
			return nil, err
		}
		if now := time.Now(); a.failing.CompareAndSwap(nil, &acceptFailure{err: err, since: now}) {
			a.logged = a.lastLogged.IsZero() || now.Sub(a.lastLogged) >= LogEvery
			if !a.logged {
				a.unlogged++
			} else {
				a.log.Error("cannot accept connections; retrying", "listener", a.name, "err", err,
					"descriptor_limit", DescriptorLimit(), "like_episodes_left_out", a.unlogged)
				a.lastLogged, a.unlogged = now, 0
			}
		}
		shed := 0
		if a.shed != nil {
			shed = a.shed()
		}
		if shed > 0 {
			wait = 0 // descriptors were freed: try at once
			continue
		}
		wait = min(max(2*wait, 5*time.Millisecond), acceptRetryMax)
		time.Sleep(wait)
	}
}

// errAcceptWorks: no connection came within the probe's deadline, but
// accepting did not fail.
var errAcceptWorks = errors.New("accept works")

// accept is the listener's Accept. While accepting fails it probes: the
// kernel refuses a descriptor before it looks for a waiting connection, so
// an accept that merely finds none within acceptRetryMax (errAcceptWorks)
// shows the condition is over even when no client calls meanwhile.
func (a *Listener) accept() (net.Conn, error) {
	d, ok := a.Listener.(interface{ SetDeadline(time.Time) error })
	if !ok || a.failing.Load() == nil {
		return a.Listener.Accept()
	}
	if err := d.SetDeadline(time.Now().Add(acceptRetryMax)); err != nil {
		return a.Listener.Accept()
	}
	c, err := a.Listener.Accept()
	d.SetDeadline(time.Time{})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, errAcceptWorks
	}
	return c, err
}

// recovered ends a failure episode, if one is on.
func (a *Listener) recovered() {
	if f := a.failing.Swap(nil); f != nil && a.logged {
		a.log.Warn("accepting connections again", "listener", a.name, "after", time.Since(f.since).Round(time.Millisecond))
	}
}

// NotAccepting says why the listener cannot accept connections now, or ""
// if it can.
func (a *Listener) NotAccepting() string {
	f := a.failing.Load()
	if f == nil {
		return ""
	}
	why := f.err.Error()
	if errors.Is(f.err, syscall.EMFILE) || errors.Is(f.err, syscall.ENFILE) {
		why = fmt.Sprintf("out of file descriptors (limit %d)", DescriptorLimit())
	}
	return fmt.Sprintf("%s listener not accepting connections for %s: %s",
		a.name, time.Since(f.since).Round(time.Second), why)
}

// retryableAccept reports whether an accept error is one a later accept
// may not meet: a shortage of descriptors or memory, or a connection the
// client dropped before it was accepted.
func retryableAccept(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, errno) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Waiting tracks one server's connections that wait for a request: new
// ones that have not sent a request yet and kept-alive ones between
// requests (the server's ConnState hook). Shed closes the longest-waiting
// of them.
//
// A kept-alive connection changes state twice per request, so that path
// takes no lock: each open connection has a slot in a sync.Map, found
// without locking once stored, whose atomic value is when it began to
// wait (a sequence number) or 0 while it is busy; only a connection's
// first and last states store and delete its slot.
type Waiting struct {
	seq   atomic.Uint64
	conns sync.Map // net.Conn -> *atomic.Uint64: since when it waits, 0: busy
}

// NewWaiting returns an empty Waiting.
func NewWaiting() *Waiting {
	return &Waiting{}
}

// FasthttpState is fasthttp's ConnState hook.
func (t *Waiting) FasthttpState(c net.Conn, s fasthttp.ConnState) {
	t.state(c, s == fasthttp.StateNew || s == fasthttp.StateIdle, s == fasthttp.StateActive)
}

// HTTPState is net/http's ConnState hook.
func (t *Waiting) HTTPState(c net.Conn, s http.ConnState) {
	t.state(c, s == http.StateNew || s == http.StateIdle, s == http.StateActive)
}

// state records that c waits for a request, is busy with one, or (neither)
// is closed or hijacked.
func (t *Waiting) state(c net.Conn, waiting, busy bool) {
	switch {
	case waiting || busy:
		t.track(c, waiting)
	default:
		t.conns.Delete(c)
	}
}

// track records whether open connection c waits for a request.
func (t *Waiting) track(c net.Conn, waiting bool) {
	var since uint64
	if waiting {
		since = t.seq.Add(1)
	}
	if v, ok := t.conns.Load(c); ok {
		v.(*atomic.Uint64).Store(since)
		return
	}
	if !waiting {
		return // not known (shed meanwhile): nothing to record
	}
	slot := new(atomic.Uint64)
	slot.Store(since)
	if v, loaded := t.conns.LoadOrStore(c, slot); loaded {
		v.(*atomic.Uint64).Store(since)
	}
}

// Shed closes up to shedBatch waiting connections, the longest-waiting
// first, and returns how many it closed. fasthttp's read on a closed
// connection fails and it lets the connection go.
func (t *Waiting) Shed() int {
	type waiting struct {
		c     net.Conn
		since uint64
	}
	var all []waiting
	t.conns.Range(func(k, v any) bool {
		if since := v.(*atomic.Uint64).Load(); since != 0 {
			all = append(all, waiting{k.(net.Conn), since})
		}
		return true
	})
	slices.SortFunc(all, func(a, b waiting) int { return cmp.Compare(a.since, b.since) })
	all = all[:min(len(all), shedBatch)]
	for _, w := range all {
		t.conns.Delete(w.c)
		w.c.Close()
	}
	return len(all)
}
