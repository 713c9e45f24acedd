package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestEdgeConnDefaults(t *testing.T) {
	tests := []struct {
		name                  string
		nofile                uint64
		wantConc, wantPerAddr int
	}{
		{name: "unknown limit", nofile: 0, wantConc: fasthttp.DefaultConcurrency, wantPerAddr: 1024},
		{name: "tiny limit", nofile: 64, wantConc: 1, wantPerAddr: 4},
		{name: "ulimit 256", nofile: 256, wantConc: 96, wantPerAddr: 12},
		{name: "ulimit 512", nofile: 512, wantConc: 192, wantPerAddr: 24},
		{name: "ulimit 1024", nofile: 1024, wantConc: 384, wantPerAddr: 48},
		{name: "ulimit 65536", nofile: 65536, wantConc: 24576, wantPerAddr: 1024},
		{name: "ulimit 1048576", nofile: 1 << 20, wantConc: fasthttp.DefaultConcurrency, wantPerAddr: 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conc, perAddr := edgeConnDefaults(tt.nofile)
			if conc != tt.wantConc || perAddr != tt.wantPerAddr {
				t.Errorf("edgeConnDefaults(%d) = %d, %d; want %d, %d", tt.nofile, conc, perAddr, tt.wantConc, tt.wantPerAddr)
			}
			if uint64(2*conc) > tt.nofile && tt.nofile > 128 {
				t.Errorf("edgeConnDefaults(%d): %d connections may take %d descriptors", tt.nofile, conc, 2*conc)
			}
		})
	}
}

func TestHTTPLimitsEdgeConnFlags(t *testing.T) {
	tests := []struct {
		name                  string
		conc, perAddr         int
		wantConc, wantPerAddr int
		wantErr               bool
	}{
		{name: "zeros fit the limit", wantConc: 192, wantPerAddr: 24},
		{name: "explicit values win", conc: 5000, perAddr: 7, wantConc: 5000, wantPerAddr: 7},
		{name: "no per-address limit", perAddr: NoConnLimit, wantConc: 192, wantPerAddr: NoConnLimit},
		{name: "below -1", perAddr: -2, wantErr: true},
		{name: "negative concurrency", conc: -1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := HTTPLimits{EdgeConcurrency: tt.conc, EdgeMaxConnsPerIP: tt.perAddr}.withDefaults(512)
			if (err != nil) != tt.wantErr {
				t.Fatalf("withDefaults: error %v, want error: %v", err, tt.wantErr)
			}
			if err == nil && (l.EdgeConcurrency != tt.wantConc || l.EdgeMaxConnsPerIP != tt.wantPerAddr) {
				t.Errorf("got %d, %d; want %d, %d", l.EdgeConcurrency, l.EdgeMaxConnsPerIP, tt.wantConc, tt.wantPerAddr)
			}
		})
	}
}

// scriptedListener answers Accept with errs in turn, then conn; during
// each failing Accept it records what the acceptor says of itself.
type scriptedListener struct {
	net.Listener
	a    *acceptor
	errs []error
	seen []string // notAccepting at each Accept
	conn net.Conn
}

func (l *scriptedListener) Accept() (net.Conn, error) {
	l.seen = append(l.seen, l.a.notAccepting())
	if len(l.errs) == 0 {
		return l.conn, nil
	}
	err := l.errs[0]
	l.errs = l.errs[1:]
	return nil, err
}

func TestAcceptorOutlastsDescriptorShortage(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	client, server := net.Pipe()
	defer client.Close()
	sl := &scriptedListener{errs: []error{emfile, emfile}, conn: server}
	var logged bytes.Buffer
	sheds := 0
	a := &acceptor{Listener: sl, name: "edge", log: slog.New(slog.NewTextHandler(&logged, nil)),
		shed: func() int { sheds++; return 0 }}
	sl.a = a

	c, err := a.Accept()
	if err != nil || c != server {
		t.Fatalf("Accept = %v, %v; want the connection after the failures", c, err)
	}
	if sheds != 2 {
		t.Errorf("shed %d times, want once per failed accept (2)", sheds)
	}
	if sl.seen[0] != "" || !strings.Contains(sl.seen[1], "edge listener not accepting") || !strings.Contains(sl.seen[2], "out of file descriptors") {
		t.Errorf("notAccepting during the accepts: %q; want \"\", then the edge out of descriptors", sl.seen)
	}
	if why := a.notAccepting(); why != "" {
		t.Errorf("notAccepting after a successful accept: %q, want \"\"", why)
	}
	// A flood makes accepting fail and recover over and over: an episode
	// right after a logged one is not logged.
	sl.errs = []error{emfile}
	if _, err := a.Accept(); err != nil {
		t.Fatalf("Accept in a second episode: %v", err)
	}
	for _, line := range []string{"cannot accept", "accepting connections again"} {
		if n := strings.Count(logged.String(), line); n != 1 {
			t.Errorf("%d lines %q over two episodes 10s apart at most, want one:\n%s", n, line, logged.String())
		}
	}

	sl.errs = []error{net.ErrClosed}
	if _, err := a.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept on a closed listener: %v, want net.ErrClosed", err)
	}
}

func TestIdleConnsShedsLongestWaitingFirst(t *testing.T) {
	idle := newIdleConns()
	var conns []net.Conn
	for range shedBatch + 2 {
		c, peer := net.Pipe()
		defer peer.Close()
		conns = append(conns, c)
		idle.apiState(c, http.StateNew)
	}
	idle.edgeState(conns[0], fasthttp.StateActive) // busy: never shed
	if n := idle.shed(); n != shedBatch {
		t.Fatalf("shed %d, want a batch of %d", n, shedBatch)
	}
	closed := func(c net.Conn) bool { // a write fails at once, closed or not (deadline now)
		c.SetWriteDeadline(time.Now())
		_, err := c.Write([]byte{0})
		return errors.Is(err, io.ErrClosedPipe)
	}
	if closed(conns[0]) {
		t.Error("an active connection was shed")
	}
	if !closed(conns[1]) || closed(conns[len(conns)-1]) {
		t.Error("want the longest-waiting connections shed first")
	}
}

func TestEdgeLoggerRedactsAndThrottles(t *testing.T) {
	var out bytes.Buffer
	l := newEdgeLogger(slog.New(slog.NewTextHandler(&out, nil)))
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5555}
	secretErr := fmt.Errorf("cannot find colon in header: \"Authorization: Bearer S3CRET\"")
	for range 100 {
		l.Printf("error when serving connection %q<->%q: %v", local, remote, secretErr)
	}
	l.Printf("%.3f %s - %s", 1.5, "GET http://x/?token=S3CRET", "message")
	got := out.String()
	if strings.Contains(got, "S3CRET") {
		t.Errorf("the log holds a request's bytes:\n%s", got)
	}
	if n := strings.Count(got, "error when serving connection"); n != 1 {
		t.Errorf("%d lines for 100 like messages, want 1:\n%s", n, got)
	}
	if !strings.Contains(got, "192.0.2.7:5555") || !strings.Contains(got, "malformed or cut request") {
		t.Errorf("the line lacks the client address or the error's kind:\n%s", got)
	}
	if !strings.Contains(got, "[redacted]") {
		t.Errorf("a string argument was not redacted:\n%s", got)
	}
}

// TestAcceptorEndsEpisodeWithoutClients: once descriptors are back, the
// condition ends (and the node is ready again) even if no client connects
// to end it with a successful accept.
func TestAcceptorEndsEpisodeWithoutClients(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a := &acceptor{Listener: ln, name: "edge", log: slog.New(slog.DiscardHandler)}
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	a.failing.Store(&acceptFailure{err: emfile, since: time.Now()}) // as after a failed accept
	got := make(chan net.Conn, 1)
	go func() {
		c, _ := a.Accept()
		got <- c
	}()
	for deadline := time.Now().Add(10 * time.Second); a.notAccepting() != ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no client came and the listener still says: %s", a.notAccepting())
		}
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if sc := <-got; sc == nil {
		t.Error("Accept after the episode ended returned no connection")
	} else {
		sc.Close()
	}
}
