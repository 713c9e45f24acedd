//go:build linux

package serve

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// connPair returns a Conn (hold size hold) accepted on loopback and the
// client end of the same connection.
func connPair(t testing.TB, hold int) (*Conn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wl := NewListener(ln, hold)
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := wl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c, ok := sc.(*Conn)
	if !ok {
		t.Fatalf("accepted a %T, want a *Conn", sc)
	}
	// A lost byte fails the test, never hangs it.
	client.SetDeadline(time.Now().Add(30 * time.Second))
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close(); client.Close() })
	return c, client.(*net.TCPConn)
}

func readN(t testing.TB, r io.Reader, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

func TestConnJoinsAHeldBufferWithTheNextWrite(t *testing.T) {
	c, client := connPair(t, 8)
	for _, w := range []string{"12345678", "abc"} {
		if n, err := c.Write([]byte(w)); err != nil || n != len(w) {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if c.pending.Load() != nil {
		t.Fatal("a buffer is still held after the next write")
	}
	if got := string(readN(t, client, 11)); got != "12345678abc" {
		t.Fatalf("the client got %q, want %q", got, "12345678abc")
	}
}

func TestConnSendsWhatItHoldsBeforeItWaits(t *testing.T) {
	tests := []struct {
		name string
		then func(t *testing.T, c *Conn, client *net.TCPConn)
	}{
		{"read", func(t *testing.T, c *Conn, client *net.TCPConn) {
			go func() {
				// The answer first, as a client would.
				if _, err := io.ReadFull(client, make([]byte, 8)); err == nil {
					client.Write([]byte("next"))
				}
			}()
			if got := string(readN(t, c, 4)); got != "next" {
				t.Errorf("Read got %q, want %q", got, "next")
			}
		}},
		{"close", func(t *testing.T, c *Conn, client *net.TCPConn) {
			c.Close()
		}},
		{"read from a file", func(t *testing.T, c *Conn, client *net.TCPConn) {
			path := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(path, []byte("from the file"), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if n, err := c.ReadFrom(&io.LimitedReader{R: f, N: 4}); n != 4 || err != nil {
				t.Fatalf("ReadFrom = %d, %v", n, err)
			}
			if got := string(readN(t, client, 12)); got != "12345678from" {
				t.Errorf("the client got %q, want %q", got, "12345678from")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, client := connPair(t, 8)
			if _, err := c.Write([]byte("12345678")); err != nil {
				t.Fatal(err)
			}
			if c.pending.Load() == nil {
				t.Fatal("a write of the hold size was not held")
			}
			tt.then(t, c, client)
			if tt.name == "close" {
				if got, err := io.ReadAll(client); string(got) != "12345678" {
					t.Errorf("after Close the client got %q, %v, want %q", got, err, "12345678")
				}
			}
		})
	}
}

// TestConnShortWritesAndAFullSocket writes far more than the socket
// buffers hold while the client reads in small pieces: writev returns
// short counts and EAGAIN, and every byte arrives once, in order.
func TestConnShortWritesAndAFullSocket(t *testing.T) {
	c, client := connPair(t, 4096)
	c.SetWriteBuffer(4096)
	held := bytes.Repeat([]byte{'h'}, 4096)
	big := make([]byte, 2<<20) // far more than the send buffer
	for i := range big {
		big[i] = byte(i % 251)
	}
	want := append(append([]byte{}, held...), big...)
	got := make(chan []byte, 1)
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 4096)
		for b.Len() < len(want) {
			n, err := client.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		got <- b.Bytes()
	}()
	if _, err := c.Write(held); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if g := <-got; !bytes.Equal(g, want) {
		t.Fatalf("the client got %d bytes, not the %d written in order", len(g), len(want))
	}
}

func TestConnWriteDeadline(t *testing.T) {
	c, _ := connPair(t, 4096) // the client never reads
	c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := c.Write(make([]byte, 64<<20))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Write to a client that never reads: %v, want a timeout", err)
	}
}

func TestConnClientGoesAway(t *testing.T) {
	c, client := connPair(t, 4096)
	client.SetLinger(0) // reset, as a client killed mid-answer
	client.Close()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = c.Write(make([]byte, 1<<20))
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Write to a reset connection: %v, want ECONNRESET or EPIPE", err)
	}
	if _, err := c.Read(make([]byte, 10)); err == nil {
		t.Fatal("Read of a reset connection succeeded")
	}
}

func TestConnReadEnds(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		c, _ := connPair(t, 4096)
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := c.Read(make([]byte, 10))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Read past its deadline: %v, want a timeout", err)
		}
	})
	t.Run("client closes", func(t *testing.T) {
		c, client := connPair(t, 4096)
		client.Write([]byte("last"))
		client.Close()
		if got := string(readN(t, c, 4)); got != "last" {
			t.Fatalf("Read got %q", got)
		}
		if n, err := c.Read(make([]byte, 10)); n != 0 || err != io.EOF {
			t.Fatalf("Read after the client closed = %d, %v, want 0, EOF", n, err)
		}
	})
	t.Run("closed meanwhile", func(t *testing.T) {
		c, _ := connPair(t, 4096)
		done := make(chan error)
		go func() {
			_, err := c.Read(make([]byte, 10))
			done <- err
		}()
		c.Close() // as the edge sheds an idle connection
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read of a connection closed meanwhile: %v, want net.ErrClosed", err)
		}
	})
}

func TestConnAllocatesNothing(t *testing.T) {
	if raceOn {
		t.Skip("the race detector makes sync.Pool drop buffers")
	}
	c, client := connPair(t, 8)
	in, out := make([]byte, 16), make([]byte, 11)
	full, rest, x := []byte("12345678"), []byte("abc"), []byte("x")
	allocs := testing.AllocsPerRun(100, func() {
		c.Write(full)
		c.Write(rest)
		io.ReadFull(client, out)
		client.Write(x)
		c.Read(in)
	})
	if allocs != 0 {
		t.Fatalf("a round trip allocates %.1f times, want 0", allocs)
	}
}

func TestAdvance(t *testing.T) {
	a, b := []byte("abc"), []byte("defgh")
	tests := []struct {
		n    int
		want string
	}{
		{0, "abcdefgh"}, {2, "cdefgh"}, {3, "defgh"}, {4, "efgh"}, {8, ""},
	}
	for _, tt := range tests {
		iov := make([]syscall.Iovec, 2)
		iov[0] = syscall.Iovec{Base: &a[0]}
		iov[0].SetLen(len(a))
		iov[1] = syscall.Iovec{Base: &b[0]}
		iov[1].SetLen(len(b))
		var got []byte
		for _, v := range advance(iov, tt.n) {
			got = append(got, unsafe.Slice(v.Base, v.Len)...)
		}
		if string(got) != tt.want {
			t.Errorf("advance by %d: got %q, want %q", tt.n, got, tt.want)
		}
	}
}

// Deadlines behave as on a net.TCPConn, however the Conn arms them: the
// one set last decides, a later one included.
func TestConnDeadlines(t *testing.T) {
	isTimeout := func(err error) bool {
		var ne net.Error
		return errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
	}
	t.Run("a later read deadline replaces a sooner one", func(t *testing.T) {
		for _, later := range []time.Time{time.Now().Add(10 * time.Second), {}} {
			c, client := connPair(t, 4096)
			c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
			c.SetReadDeadline(later)
			time.AfterFunc(200*time.Millisecond, func() { client.Write([]byte("late")) })
			if got := string(readN(t, c, 4)); got != "late" {
				t.Fatalf("Read got %q", got)
			}
		}
	})
	t.Run("the later read deadline still ends the read", func(t *testing.T) {
		c, _ := connPair(t, 4096)
		start := time.Now()
		c.SetReadDeadline(start.Add(10 * time.Millisecond))
		c.SetReadDeadline(start.Add(150 * time.Millisecond))
		_, err := c.Read(make([]byte, 10))
		if !isTimeout(err) {
			t.Fatalf("Read past its deadline: %v, want a timeout", err)
		}
		if waited := time.Since(start); waited < 150*time.Millisecond {
			t.Fatalf("Read timed out after %s, before the deadline set last (150ms)", waited)
		}
		if _, err := c.Read(make([]byte, 10)); !isTimeout(err) {
			t.Fatalf("Read after the deadline passed: %v, want a timeout", err)
		}
	})
	t.Run("a sooner deadline interrupts a waiting read", func(t *testing.T) {
		c, _ := connPair(t, 4096)
		c.SetReadDeadline(time.Now().Add(time.Hour))
		done := make(chan error)
		go func() {
			_, err := c.Read(make([]byte, 10))
			done <- err
		}()
		time.Sleep(20 * time.Millisecond)
		c.SetReadDeadline(time.Now())
		select {
		case err := <-done:
			if !isTimeout(err) {
				t.Fatalf("interrupted Read: %v, want a timeout", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a deadline in the past did not interrupt the Read")
		}
	})
	t.Run("a later write deadline replaces a sooner one", func(t *testing.T) {
		c, client := connPair(t, 4096) // the client reads only after a while
		start := time.Now()
		c.SetWriteDeadline(start.Add(10 * time.Millisecond))
		c.SetDeadline(start.Add(10 * time.Second))
		big := make([]byte, 8<<20)
		got := make(chan int)
		go func() {
			time.Sleep(200 * time.Millisecond)
			n, _ := io.Copy(io.Discard, io.LimitReader(client, int64(len(big))))
			got <- int(n)
		}()
		if n, err := c.Write(big); n != len(big) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if n := <-got; n != len(big) {
			t.Fatalf("the client got %d bytes of %d", n, len(big))
		}
		// A file goes out under the deadline set last too.
		name := filepath.Join(t.TempDir(), "body")
		if err := os.WriteFile(name, big, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		go func() {
			time.Sleep(200 * time.Millisecond)
			n, _ := io.Copy(io.Discard, io.LimitReader(client, int64(len(big))))
			got <- int(n)
		}()
		if n, err := c.ReadFrom(f); n != int64(len(big)) || err != nil {
			t.Fatalf("ReadFrom = %d, %v", n, err)
		}
		if n := <-got; n != len(big) {
			t.Fatalf("the client got %d bytes of the file's %d", n, len(big))
		}
		c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		start = time.Now()
		_, err = c.Write(make([]byte, 64<<20)) // nobody reads now
		if !isTimeout(err) || time.Since(start) < 50*time.Millisecond {
			t.Fatalf("Write to a client that stopped reading: %v after %s, want a timeout after 50ms", err, time.Since(start))
		}
	})
}

func TestConnDeadlineAllocatesNothing(t *testing.T) {
	c, _ := connPair(t, 4096)
	now := time.Now()
	allocs := testing.AllocsPerRun(100, func() {
		now = now.Add(time.Millisecond)
		c.SetReadDeadline(now.Add(2 * time.Minute))
		c.SetReadDeadline(now.Add(30 * time.Second))
		c.SetWriteDeadline(now.Add(5 * time.Minute))
	})
	if allocs != 0 {
		t.Fatalf("setting deadlines allocates %.1f times, want 0", allocs)
	}
}

// BenchmarkConnDeadlines sets a kept-alive request's three deadlines, as
// fasthttp does (idle, read, write), on a net.TCPConn and on a Conn.
func BenchmarkConnDeadlines(b *testing.B) {
	c, _ := connPair(b, 4096)
	for _, bc := range []struct {
		name string
		conn net.Conn
	}{{"TCPConn", c.TCPConn}, {"Conn", c}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				bc.conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
				bc.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
				bc.conn.SetWriteDeadline(time.Now().Add(5 * time.Minute))
			}
		})
	}
}
