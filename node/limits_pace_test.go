package node

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pacedServer serves h behind paced with the given grace and rate, on a
// real loopback listener (deadlines need a real connection).
func pacedServer(t *testing.T, grace time.Duration, rate int64, h http.HandlerFunc) string {
	t.Helper()
	l := DefaultHTTPLimits()
	l.APIReadTimeout, l.APIWriteTimeout, l.APIMinRate = grace, grace, rate
	srv := httptest.NewServer(paced(l, h))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// readAll answers how many body bytes the handler received, or the read
// error.
func readAll(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		http.Error(w, fmt.Sprintf("read %d bytes: %v", n, err), http.StatusRequestTimeout)
		return
	}
	fmt.Fprintf(w, "%d", n)
}

// sendPaced writes a PUT with a body of size bytes, chunk bytes every
// every, and returns the status line the server answered (or "" if it
// closed the connection, or did not answer within 8 s) and how long that
// took.
func sendPaced(t *testing.T, addr string, size, chunk int, every time.Duration) (string, time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
	answered := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(conn).ReadString('\n')
		answered <- strings.TrimSpace(line)
	}()
	buf := make([]byte, chunk)
	for sent := 0; sent < size && time.Since(start) < 8*time.Second; sent += chunk {
		select {
		case line := <-answered:
			return line, time.Since(start)
		case <-time.After(every):
		}
		if _, err := conn.Write(buf[:min(chunk, size-sent)]); err != nil {
			break
		}
	}
	select {
	case line := <-answered:
		return line, time.Since(start)
	case <-time.After(time.Second):
		return "", time.Since(start)
	}
}

func TestPacedBody(t *testing.T) {
	const grace, rate = time.Second, 8 << 10
	addr := pacedServer(t, grace, rate, readAll)

	t.Run("drip is cut off", func(t *testing.T) {
		// 20 bytes every 200 ms, 100 B/s: far below 8 KiB/s. The body would
		// take 100 s; its deadline is 1 s plus a few ms of allowance.
		line, took := sendPaced(t, addr, 10_000, 20, 200*time.Millisecond)
		if strings.Contains(line, "200") || took > 4*time.Second {
			t.Fatalf("answer %q after %s, want the body refused within ~1s", line, took)
		}
		t.Logf("cut off after %s: %q", took.Round(time.Millisecond), line)
	})
	t.Run("unread body is not waited for", func(t *testing.T) {
		// The handler refuses at once without reading; net/http would then
		// read the rest of the body to reuse the connection, at the
		// client's pace, before sending the answer.
		refuse := pacedServer(t, grace, rate, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", http.StatusUnauthorized)
		})
		line, took := sendPaced(t, refuse, 10_000, 20, 200*time.Millisecond)
		if !strings.Contains(line, "401") || took > 4*time.Second {
			t.Fatalf("answer %q after %s, want 401 within ~1s", line, took)
		}
	})
	t.Run("slow but steady passes", func(t *testing.T) {
		// 64 KiB at ~40 KiB/s takes ~1.6 s, longer than the 1 s grace: it
		// passes only because the allowance grows with what has arrived.
		line, took := sendPaced(t, addr, 64<<10, 4<<10, 100*time.Millisecond)
		if !strings.Contains(line, "200") {
			t.Fatalf("answer %q after %s, want 200", line, took)
		}
		if took < grace {
			t.Errorf("upload took %s, want it longer than the grace %s for this test to mean anything", took, grace)
		}
	})
}

// TestPacedKeepAlive: the deadlines one request sets do not leak into the
// handler's later work or into the next request on the same connection.
func TestPacedKeepAlive(t *testing.T) {
	const grace = 300 * time.Millisecond
	addr := pacedServer(t, grace, 1<<20, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow": // reads its body (and past its end), then works longer than the grace
			io.Copy(io.Discard, r.Body)
			r.Body.Read(make([]byte, 1))
			time.Sleep(3 * grace)
			if err := r.Context().Err(); err != nil {
				http.Error(w, "request cancelled while working: "+err.Error(), http.StatusInternalServerError)
				return
			}
			io.WriteString(w, "done")
		default:
			w.WriteHeader(http.StatusNoContent) // nothing written but the header
		}
	})
	tr := &http.Transport{MaxConnsPerHost: 1, ExpectContinueTimeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	conns := 0
	tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		conns++
		return (&net.Dialer{}).DialContext(ctx, network, a)
	}
	resp, err := c.Post("http://"+addr+"/slow", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "done" {
		t.Fatalf("/slow = %d %q", resp.StatusCode, body)
	}
	time.Sleep(3 * grace) // longer than any deadline the first request set
	resp, err = c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("second request on the kept-alive connection: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("second request: %d, want 204", resp.StatusCode)
	}

	// net/http writes "100 Continue" itself, at the handler's first read:
	// no write deadline of the previous request may be left for it.
	time.Sleep(3 * grace)
	req, _ := http.NewRequest("POST", "http://"+addr+"/slow", strings.NewReader("hello"))
	req.Header.Set("Expect", "100-continue")
	start := time.Now()
	resp, err = c.Do(req)
	if err != nil {
		t.Fatalf("third request (Expect: 100-continue): %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || time.Since(start) > 5*grace {
		t.Errorf("third request: %d after %s, want 200 without waiting for the continue timeout", resp.StatusCode, time.Since(start))
	}
	if conns != 1 {
		t.Errorf("%d connections, want the one kept alive", conns)
	}
}

// TestPacedWriter: a client that stops reading a large response is cut
// off; the bytes it then gets are fewer than the body.
func TestPacedWriter(t *testing.T) {
	const size = 64 << 20
	addr := pacedServer(t, 500*time.Millisecond, 1<<20, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		buf := make([]byte, 64<<10)
		for sent := 0; sent < size; sent += len(buf) {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	})
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { // a small receive window: the server's writes block soon
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
		})
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(4 * time.Second) // a stalled reader
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, conn)
	if n >= size {
		t.Fatalf("read %d bytes (%v): the server kept the stalled connection", n, err)
	}
	t.Logf("stalled reader got %d of %d bytes, then: %v", n, size, err)
}
