package serve

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// LimitPerIP returns ln that lets each client address hold at most max
// connections at once; a connection over the limit is answered 429 and
// closed, and the listener goes on accepting. fasthttp's MaxConnsPerIP does
// the same, but its connection wrapper hides the TCP connection's ReadFrom,
// so file bodies lost sendfile(2) and went out through a 4 KiB buffer (a
// 256 KiB answer took ~60 reads and ~30 writes). The connections LimitPerIP
// returns keep ReadFrom. max <= 0 returns ln as it is.
func LimitPerIP(ln net.Listener, max int) net.Listener {
	if max <= 0 {
		return ln
	}
	return &perIPListener{Listener: ln, max: max, conns: map[netip.Addr]int{}}
}

type perIPListener struct {
	net.Listener
	max   int
	mu    sync.Mutex
	conns map[netip.Addr]int // open connections per client address
}

// tooManyConns is the answer to a connection over the per-address limit.
const tooManyConns = "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 57\r\nConnection: close\r\n\r\ntoo many connections from your address: close some first\n"

func (l *perIPListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
		if err != nil {
			return c, nil // not an IP connection: nothing to count
		}
		ip := ap.Addr().Unmap()
		l.mu.Lock()
		over := l.conns[ip] >= l.max
		if !over {
			l.conns[ip]++
		}
		l.mu.Unlock()
		if over {
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			io.WriteString(c, tooManyConns)
			c.Close()
			continue
		}
		return &perIPConn{Conn: c, l: l, ip: ip}, nil
	}
}

func (l *perIPListener) release(ip netip.Addr) {
	l.mu.Lock()
	if l.conns[ip]--; l.conns[ip] <= 0 {
		delete(l.conns, ip)
	}
	l.mu.Unlock()
}

// perIPConn counts against its address until closed.
type perIPConn struct {
	net.Conn
	l    *perIPListener
	ip   netip.Addr
	once sync.Once
}

func (c *perIPConn) Close() error {
	c.once.Do(func() { c.l.release(c.ip) })
	return c.Conn.Close()
}

// ReadFrom lets the connection underneath send r, with sendfile(2) when it
// is a TCP connection (or a Conn) and r a file.
func (c *perIPConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}
