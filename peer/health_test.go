package peer_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/peer"
)

// freezable is a peer that can stop answering (as a process under
// SIGSTOP) and resume; it counts the requests that reached it.
type freezable struct {
	srv    *httptest.Server
	mu     sync.Mutex
	thawed chan struct{} // closed while the peer answers
	has    atomic.Int64  // has requests received
	joins  atomic.Int64
}

func newFreezable(t *testing.T) *freezable {
	f := &freezable{thawed: make(chan struct{})}
	close(f.thawed)
	wait := func(r *http.Request) bool {
		f.mu.Lock()
		ch := f.thawed
		f.mu.Unlock()
		select {
		case <-ch:
			return true
		case <-r.Context().Done():
			return false
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+peer.HasPath, func(w http.ResponseWriter, r *http.Request) {
		f.has.Add(1)
		if wait(r) {
			w.Write([]byte(`{"present":{}}`))
		}
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if wait(r) {
			w.Write([]byte(`{"status":"ok"}`))
		}
	})
	mux.HandleFunc("POST "+peer.JoinPath, func(w http.ResponseWriter, r *http.Request) {
		f.joins.Add(1)
		if wait(r) {
			w.WriteHeader(http.StatusCreated)
		}
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		f.thaw()
		f.srv.CloseClientConnections()
		f.srv.Close()
	})
	return f
}

func (f *freezable) freeze() {
	f.mu.Lock()
	f.thawed = make(chan struct{})
	f.mu.Unlock()
}

func (f *freezable) thaw() {
	f.mu.Lock()
	select {
	case <-f.thawed:
	default:
		close(f.thawed)
	}
	f.mu.Unlock()
}

func (f *freezable) host() string {
	u, _ := url.Parse(f.srv.URL)
	return u.Host
}

// TestHealthStateMachine walks a peer through up, down (after one
// unanswered call; later calls are not sent) and up again (after a probe
// answers), and checks that a call its caller cancelled, and a join, are
// not counted against a peer.
func TestHealthStateMachine(t *testing.T) {
	frozen, other := newFreezable(t), newFreezable(t)
	c := peer.New(testKey)
	changes := make(chan bool, 8)
	cfg := peer.DefaultHealthConfig()
	cfg.Probe, cfg.Interval, cfg.Timeout = c.Ping, 10*time.Millisecond, 200*time.Millisecond
	cfg.OnChange = func(host string, up bool, why error) {
		if host == frozen.host() {
			changes <- up
		}
	}
	h, err := peer.NewHealth(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Health = h
	t.Cleanup(h.Close)
	hashes := []string{hashOf([]byte("a blob"))}
	has := func(f *freezable, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		_, err := c.Has(ctx, f.srv.URL, hashes)
		return err
	}

	if err := has(frozen, 5*time.Second); err != nil {
		t.Fatalf("has on an answering peer: %v", err)
	}
	frozen.freeze()
	err = has(frozen, 100*time.Millisecond)
	if !errors.Is(err, peer.ErrUnreachable) || errors.Is(err, peer.ErrDown) {
		t.Fatalf("first call to a frozen peer: %v, want unreachable (a timeout), not down", err)
	}
	if up := <-changes; up {
		t.Fatal("OnChange said up, want down")
	}
	if _, down := h.Down(frozen.host()); !down {
		t.Fatal("a peer that timed out is not marked down")
	}
	sent := frozen.has.Load()
	for range 20 {
		if err := has(frozen, 5*time.Second); !errors.Is(err, peer.ErrDown) || !errors.Is(err, peer.ErrUnreachable) {
			t.Fatalf("call to a down peer: %v, want ErrDown wrapping ErrUnreachable", err)
		}
	}
	if got := frozen.has.Load(); got != sent {
		t.Errorf("%d calls reached a peer marked down, want none", got-sent)
	}
	// A join is not skipped: it reaches the frozen peer (and times out).
	jctx, jcancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	c.Join(jctx, frozen.srv.URL, atoll.JoinRequest{ID: "x"})
	jcancel()
	if frozen.joins.Load() != 1 {
		t.Errorf("join to a down peer: %d requests arrived, want 1", frozen.joins.Load())
	}

	// A call its caller cancels says nothing of the peer.
	other.freeze()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() {
		_, err := c.Has(ctx, other.srv.URL, hashes)
		done <- err
	}()
	for other.has.Load() == 0 {
		time.Sleep(time.Millisecond) // until the request arrived
	}
	cancel()
	<-done
	if _, down := h.Down(other.host()); down {
		t.Error("a call cancelled by its caller marked its peer down")
	}
	other.thaw()

	frozen.thaw()
	if up := <-changes; !up {
		t.Fatal("OnChange said down, want up")
	}
	if err := has(frozen, 5*time.Second); err != nil {
		t.Fatalf("has after the peer answered a probe: %v", err)
	}
	if len(h.DownHosts()) != 0 {
		t.Errorf("down hosts %v, want none", h.DownHosts())
	}
}

// A peer marked down is probed again soon, not only after a full
// Interval: with an Interval of an hour, a peer that answers again (a node
// restarted) is marked up within the test's patience.
func TestHealthProbesSoonAfterMarkingDown(t *testing.T) {
	f := newFreezable(t)
	c := peer.New(testKey)
	changes := make(chan bool, 8)
	cfg := peer.DefaultHealthConfig()
	cfg.Probe, cfg.Interval, cfg.Timeout = c.Ping, time.Hour, 100*time.Millisecond
	cfg.OnChange = func(host string, up bool, why error) { changes <- up }
	h, err := peer.NewHealth(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Health = h
	t.Cleanup(h.Close)
	f.freeze()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	_, err = c.Has(ctx, f.srv.URL, []string{hashOf([]byte("a blob"))})
	cancel()
	if !errors.Is(err, peer.ErrUnreachable) {
		t.Fatalf("call to a frozen peer: %v, want unreachable", err)
	}
	if up := <-changes; up {
		t.Fatal("OnChange said up, want down")
	}
	f.thaw()
	select {
	case up := <-changes:
		if !up {
			t.Fatal("OnChange said down, want up")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a peer that answers again was not probed within 30 s (Interval is an hour)")
	}
}

// closesReusedConns is a peer that answers the first request of each
// connection and closes the connection, unanswered, when a second request
// arrives on it: as a peer restarted since the client's last call, whose
// old kept-alive connection the client still holds, would.
type closesReusedConns struct {
	srv    *httptest.Server
	closed atomic.Int64 // requests cut off so
}

type connRequestsKey struct{}

func newClosesReusedConns(t *testing.T) *closesReusedConns {
	p := &closesReusedConns{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Context().Value(connRequestsKey{}).(*atomic.Int64).Add(1) > 1 {
			p.closed.Add(1)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			conn.Close()
			return
		}
		switch r.URL.Path {
		case peer.HasPath:
			w.Write([]byte(`{"present":{}}`))
		case peer.FetchPath:
			w.Write([]byte(`{"fetched":1}`))
		default:
			w.Write([]byte(`{"status":"ok"}`))
		}
	})
	p.srv = httptest.NewUnstartedServer(handler)
	p.srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connRequestsKey{}, new(atomic.Int64))
	}
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

// TestCallOnAConnectionThePeerClosed: a question (Has) or a pull sent on a
// kept-alive connection that the peer closes is sent again on a new one; it
// neither fails nor marks the peer down (which would have the census skip
// an owner that came back with an empty disk, as if it were unreachable).
func TestCallOnAConnectionThePeerClosed(t *testing.T) {
	p := newClosesReusedConns(t)
	c := peer.New(testKey)
	cfg := peer.DefaultHealthConfig()
	cfg.Probe = c.Ping
	h, err := peer.NewHealth(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Health = h
	t.Cleanup(h.Close)
	hashes := []string{hashOf([]byte("a blob"))}
	// The transport puts a connection back among its idle ones a moment
	// after the answer was read: call until some calls found one.
	for i := 0; i < 200 && p.closed.Load() < 5; i++ {
		if _, err := c.Has(t.Context(), p.srv.URL, hashes); err != nil {
			t.Fatalf("has #%d: %v", i, err)
		}
		if _, err := c.Pull(t.Context(), p.srv.URL, hashes); err != nil {
			t.Fatalf("pull #%d: %v", i, err)
		}
	}
	if p.closed.Load() == 0 {
		t.Fatal("no call reused a connection: the test tests nothing")
	}
	if hosts := h.DownHosts(); len(hosts) != 0 {
		t.Errorf("down hosts %v, want none", hosts)
	}
}
