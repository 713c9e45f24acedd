//go:build linux

package serve

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Connections of the plain-HTTP edge.
//
// Every request on a kept-alive connection costs the edge a read that finds
// nothing, a read of the request and one write of the answer. Through Go's
// net package each is a system call bracketed by the runtime's
// entersyscall/exitsyscall; a write on loopback runs the receiving end's
// whole TCP path and wakes the client, and when the kernel then preempts the
// writing thread the runtime's monitor (sysmon) takes its processor away,
// wakes another thread to run it, and puts the first one to sleep when the
// write returns: several context switches per answer, and sysmon itself
// wakes every 20 µs while it keeps finding such writes. Conn issues the
// reads and writes as raw system calls on the non-blocking socket (they never
// block: EAGAIN waits in Go's poller as before), so a preempted write keeps
// its processor, as an nginx worker does.
//
// fasthttp sends a header and an in-memory body with one writev only to a
// *net.TCPConn; through any other net.Conn its buffered writer first writes
// a full buffer (header and the start of the body) and then the rest. Conn
// holds such a full buffer (exactly holdSize bytes, fasthttp's write buffer
// size, which it only writes when more follows) and sends it with the next
// write in one writev, so an answer is still one system call.
//
// fasthttp also sets three deadlines per request on a kept-alive
// connection (the idle timeout before it waits, the read timeout at the
// request's first byte, the write timeout before the answer), and each
// moves a timer of Go's poller, under the timers' lock. Conn moves the
// poller's timer only for a deadline sooner than the one armed; a later
// one is recorded, and when the armed deadline passes while a later one is
// recorded, the read or write arms that one and goes on waiting (see
// lazyDeadline). A connection still times out when the deadline set last
// says, and a sooner one (a shorter timeout, or a deadline in the past to
// interrupt a read) takes effect at once.

// NewListener returns ln whose TCP connections are Conns. writeBuffer is the
// fasthttp server's WriteBufferSize. TLS listeners are not to be wrapped:
// TLS writes records, not fasthttp's buffers.
func NewListener(ln net.Listener, writeBuffer int) net.Listener {
	return &connListener{Listener: ln, hold: writeBuffer}
}

type connListener struct {
	net.Listener
	hold int
}

func (l *connListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	return newConn(tc, l.hold)
}

// Conn is a TCP connection of the edge whose reads and writes are raw
// system calls, and which joins a held full write buffer with the next
// write (see the top of this file). Read, Write and ReadFrom are called by
// one goroutine at a time (the server's); Close may come from any.
type Conn struct {
	*net.TCPConn
	rc   syscall.RawConn
	hold int

	// pending is a held full buffer (pooled), nil when none. Whoever swaps
	// it out owns it: a Close from another goroutine may take it.
	pending atomic.Pointer[[]byte]

	op rawOp // the server goroutine's; a Close from elsewhere has its own

	rd, wd lazyDeadline // read and write deadlines
}

// lazyDeadline is one deadline of a Conn: want is the deadline last set,
// armed the one the poller enforces (UnixNano; 0: none). armed is never
// later than want: a deadline at or after the armed one is only recorded
// (two atomic operations), a sooner one is armed at once under mu, and
// expired arms a recorded later one when the armed one has passed.
type lazyDeadline struct {
	mu    sync.Mutex
	want  atomic.Int64
	armed atomic.Int64
}

// unixNano is t as a lazyDeadline holds it: 0 for none.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if n := t.UnixNano(); n != 0 {
		return n
	}
	return 1
}

// later reports whether deadline a (UnixNano, 0: none) is at or after b.
func later(a, b int64) bool { return a == 0 || (b != 0 && a >= b) }

// set records deadline t, arming it with arm (the TCP connection's own
// setter) unless the armed deadline comes first.
func (d *lazyDeadline) set(t time.Time, arm func(time.Time) error) error {
	n := unixNano(t)
	if a := d.armed.Load(); a != 0 && later(n, a) {
		d.want.Store(n)
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := arm(t); err != nil {
		return err
	}
	d.want.Store(n)
	d.armed.Store(n)
	return nil
}

// expired is called when the armed deadline has passed: it arms the
// deadline set since, and reports whether that one is still ahead (the
// operation goes on waiting) or the connection has timed out.
func (d *lazyDeadline) expired(arm func(time.Time) error) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.want.Load()
	if n == d.armed.Load() {
		return false
	}
	t, err := d.armLocked(n, arm)
	return err == nil && (n == 0 || t.After(time.Now()))
}

// armLocked arms deadline n (UnixNano, 0: none), under d.mu.
func (d *lazyDeadline) armLocked(n int64, arm func(time.Time) error) (time.Time, error) {
	var t time.Time
	if n != 0 {
		t = time.Unix(0, n)
	}
	if err := arm(t); err != nil {
		return t, err
	}
	d.armed.Store(n)
	return t, nil
}

// sync arms the deadline set last, if it is not the one armed.
func (d *lazyDeadline) sync(arm func(time.Time) error) error {
	if d.want.Load() == d.armed.Load() {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := d.want.Load(); n != d.armed.Load() {
		_, err := d.armLocked(n, arm)
		return err
	}
	return nil
}

// SetDeadline sets the read and write deadlines (see lazyDeadline).
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline of reads (see lazyDeadline).
func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.rd.set(t, c.TCPConn.SetReadDeadline)
}

// SetWriteDeadline sets the deadline of writes (see lazyDeadline).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	return c.wd.set(t, c.TCPConn.SetWriteDeadline)
}

// goOn reports whether err is the armed deadline passing while a
// later one was set since, now armed: the operation is to go on.
func (c *Conn) goOn(err error, d *lazyDeadline, arm func(time.Time) error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) && d.expired(arm)
}

// rawOp is the state of one raw read or write, read by the method values
// readFn and writeFn, bound once so that a call allocates nothing.
type rawOp struct {
	readFn, writeFn func(fd uintptr) bool
	rbuf            []byte
	rn              int
	iov             [2]syscall.Iovec
	iovs            []syscall.Iovec
	err             error
}

func (o *rawOp) bind() *rawOp {
	o.readFn, o.writeFn = o.rawRead, o.rawWrite
	return o
}

var _ io.ReaderFrom = (*Conn)(nil)

func newConn(tc *net.TCPConn, hold int) (net.Conn, error) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return tc, nil // no raw access: the plain connection works as before
	}
	c := &Conn{TCPConn: tc, rc: rc, hold: hold}
	c.op.bind()
	return c, nil
}

var holdPool sync.Pool // *[]byte of cap >= the hold size

// Read reads from the socket, after sending a held buffer.
func (c *Conn) Read(p []byte) (int, error) {
	if err := c.flushHeld(&c.op); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	o := &c.op
	o.rbuf, o.rn, o.err = p, 0, nil
	err := c.rc.Read(o.readFn)
	for err != nil && o.rn == 0 && o.err == nil && c.goOn(err, &c.rd, c.TCPConn.SetReadDeadline) {
		err = c.rc.Read(o.readFn)
	}
	n := o.rn
	o.rbuf = nil
	if err == nil {
		err = o.err
	}
	if err != nil {
		return n, c.opError("read", err)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// rawRead is the raw read(2); false means "not ready, wait".
func (o *rawOp) rawRead(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&o.rbuf[0])), uintptr(len(o.rbuf)))
		switch e {
		case 0:
			o.rn = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		o.err = e
		return true
	}
}

// Write sends p. A write of exactly the hold size with nothing held is
// held (copied) until the next write, read, ReadFrom or Close; otherwise
// what is held and p go out in one writev.
func (c *Conn) Write(p []byte) (int, error) {
	held := c.pending.Swap(nil)
	if held == nil && len(p) == c.hold && c.hold > 0 {
		c.pending.Store(holdBuffer(p))
		return len(p), nil
	}
	var err error
	if held != nil {
		err = c.writev(&c.op, *held, p)
		holdPool.Put(held)
	} else {
		err = c.writev(&c.op, p, nil)
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// ReadFrom sends what is held, then lets the TCP connection copy r (with
// sendfile(2) when r is a file), under the write deadline set last.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.flushHeld(&c.op); err != nil {
		return 0, err
	}
	// A copy cut short by a deadline may have read bytes it did not
	// send, so it cannot go on after one: the deadline set last is armed
	// first.
	if err := c.wd.sync(c.TCPConn.SetWriteDeadline); err != nil {
		return 0, err
	}
	return c.TCPConn.ReadFrom(r)
}

// Close sends what is held, within the write deadline, and closes the
// connection. A Close from another goroutine in the middle of an answer
// cuts it short, as on any connection: the client sees an incomplete or
// malformed answer and the connection closed, never a well-formed wrong
// one.
func (c *Conn) Close() error {
	if c.pending.Load() != nil {
		c.flushHeld(new(rawOp).bind()) // the connection ends either way
	}
	return c.TCPConn.Close()
}

func holdBuffer(p []byte) *[]byte {
	bp, _ := holdPool.Get().(*[]byte)
	if bp == nil || cap(*bp) < len(p) {
		b := make([]byte, 0, len(p))
		bp = &b
	}
	*bp = append((*bp)[:0], p...)
	return bp
}

// flushHeld sends the held buffer, if any.
func (c *Conn) flushHeld(o *rawOp) error {
	if c.pending.Load() == nil {
		return nil
	}
	held := c.pending.Swap(nil)
	if held == nil {
		return nil
	}
	err := c.writev(o, *held, nil)
	holdPool.Put(held)
	return err
}

// writev sends a and then b, whole: a short write continues where it
// stopped, and a full socket buffer waits in Go's poller (within the write
// deadline).
func (c *Conn) writev(o *rawOp, a, b []byte) error {
	o.iovs = o.iov[:0]
	for _, s := range [2][]byte{a, b} {
		if len(s) > 0 {
			v := syscall.Iovec{Base: &s[0]}
			v.SetLen(len(s))
			o.iovs = append(o.iovs, v)
		}
	}
	if len(o.iovs) == 0 {
		return nil
	}
	o.err = nil
	err := c.rc.Write(o.writeFn)
	for err != nil && o.err == nil && c.goOn(err, &c.wd, c.TCPConn.SetWriteDeadline) {
		err = c.rc.Write(o.writeFn) // o.iovs holds what is left
	}
	o.iov, o.iovs = [2]syscall.Iovec{}, nil // hold no reference to the caller's bytes
	if err == nil {
		err = o.err
	}
	if err != nil {
		return c.opError("write", err)
	}
	return nil
}

// opError is err as net.TCPConn would report it: a *net.OpError naming
// op, whose Err is the cause (the raw connection's own OpError unwrapped).
func (c *Conn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// rawWrite is the raw writev(2) of o.iovs until they are all sent; false
// means "socket buffer full, wait".
func (o *rawOp) rawWrite(fd uintptr) bool {
	for len(o.iovs) > 0 {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&o.iovs[0])), uintptr(len(o.iovs)))
		switch e {
		case 0:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			o.err = e
			return true
		}
		o.iovs = advance(o.iovs, int(n))
		if n == 0 && len(o.iovs) > 0 {
			o.err = io.ErrShortWrite
			return true
		}
	}
	return true
}

// advance drops the first n bytes from iovs.
func advance(iovs []syscall.Iovec, n int) []syscall.Iovec {
	for len(iovs) > 0 && n > 0 {
		l := int(iovs[0].Len)
		if n < l {
			iovs[0].Base = (*byte)(unsafe.Add(unsafe.Pointer(iovs[0].Base), n))
			iovs[0].SetLen(l - n)
			return iovs
		}
		n -= l
		iovs = iovs[1:]
	}
	return iovs
}
