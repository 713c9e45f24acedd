package listen

import (
	"bytes"
	"errors"
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

type scriptedListener struct {
	net.Listener
	a    *Listener
	errs []error
	seen []string // notAccepting at each Accept
	conn net.Conn
}

func (l *scriptedListener) Accept() (net.Conn, error) {
	l.seen = append(l.seen, l.a.NotAccepting())
	if len(l.errs) == 0 {
		return l.conn, nil
	}
	err := l.errs[0]
	l.errs = l.errs[1:]
	return nil, err
}

func TestListenerOutlastsDescriptorShortage(t *testing.T) {
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	client, server := net.Pipe()
	defer client.Close()
	sl := &scriptedListener{errs: []error{emfile, emfile}, conn: server}
	var logged bytes.Buffer
	sheds := 0
	a := &Listener{Listener: sl, name: "edge", log: slog.New(slog.NewTextHandler(&logged, nil)),
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
	if why := a.NotAccepting(); why != "" {
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

func TestWaitingShedsLongestWaitingFirst(t *testing.T) {
	idle := NewWaiting()
	var conns []net.Conn
	for range shedBatch + 2 {
		c, peer := net.Pipe()
		defer peer.Close()
		conns = append(conns, c)
		idle.HTTPState(c, http.StateNew)
	}
	idle.FasthttpState(conns[0], fasthttp.StateActive) // busy: never shed
	if n := idle.Shed(); n != shedBatch {
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
	// The busy one waits again, the last one closes: only the first is
	// left to shed.
	idle.FasthttpState(conns[0], fasthttp.StateIdle)
	idle.HTTPState(conns[len(conns)-1], http.StateClosed)
	if n := idle.Shed(); n != 1 || !closed(conns[0]) || closed(conns[len(conns)-1]) {
		t.Errorf("shed %d, want the one connection waiting again and not the closed one", n)
	}
	if n := idle.Shed(); n != 0 {
		t.Errorf("shed %d more, want none left", n)
	}
}

func TestListenerEndsEpisodeWithoutClients(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a := &Listener{Listener: ln, name: "edge", log: slog.New(slog.DiscardHandler)}
	emfile := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	a.failing.Store(&acceptFailure{err: emfile, since: time.Now()}) // as after a failed accept
	got := make(chan net.Conn, 1)
	go func() {
		c, _ := a.Accept()
		got <- c
	}()
	for deadline := time.Now().Add(10 * time.Second); a.NotAccepting() != ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no client came and the listener still says: %s", a.NotAccepting())
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

// BenchmarkWaitingKeptAlive is what a kept-alive request costs Waiting:
// its connection goes busy, then waits again, among 64 open ones.
func BenchmarkWaitingKeptAlive(b *testing.B) {
	w := NewWaiting()
	conns := make([]net.Conn, 64)
	for i := range conns {
		c, peer := net.Pipe()
		b.Cleanup(func() { c.Close(); peer.Close() })
		conns[i] = c
		w.FasthttpState(c, fasthttp.StateNew)
	}
	i := 0
	for b.Loop() {
		c := conns[i%len(conns)]
		i++
		w.FasthttpState(c, fasthttp.StateActive)
		w.FasthttpState(c, fasthttp.StateIdle)
	}
}
