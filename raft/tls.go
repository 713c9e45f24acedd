package raft

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"

	"github.com/hashicorp/go-hclog"
	hraft "github.com/hashicorp/raft"
)

// tlsStreamLayer is hashicorp/raft's StreamLayer on mutual TLS: the
// listener wraps every accepted TCP connection in a TLS server that
// requires a client certificate signed by the cluster CA, and Dial presents
// this node's certificate and verifies the peer's against the same CA (and
// its address, as any TLS client does). A peer without such a certificate
// fails the handshake, so it never reads or writes a raft RPC.
type tlsStreamLayer struct {
	ln        net.Listener // plain TCP; TLS is added per connection
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	timeout   time.Duration // bound on a handshake
}

var _ hraft.StreamLayer = (*tlsStreamLayer)(nil)

// clusterTLS checks a Config.TLS and returns the server and client sides
// of the transport's mutual TLS.
func clusterTLS(c *tls.Config) (server, client *tls.Config, err error) {
	if len(c.Certificates) == 0 {
		return nil, nil, fmt.Errorf("%w: raft TLS config has no certificate", atoll.ErrInvalid)
	}
	if c.ClientCAs == nil {
		return nil, nil, fmt.Errorf("%w: raft TLS config has no ClientCAs (the cluster CA)", atoll.ErrInvalid)
	}
	server = c.Clone()
	server.ClientAuth = tls.RequireAndVerifyClientCert
	server.MinVersion = max(server.MinVersion, tls.VersionTLS12)
	client = &tls.Config{
		Certificates: c.Certificates,
		RootCAs:      c.ClientCAs,
		MinVersion:   server.MinVersion,
	}
	return server, client, nil
}

// newTLSTransport is NewTCPTransportWithLogger on mutual TLS.
func newTLSTransport(cfg Config, advertise net.Addr, logger hclog.Logger) (*hraft.NetworkTransport, error) {
	server, client, err := clusterTLS(cfg.TLS)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return nil, err
	}
	stream := &tlsStreamLayer{ln: ln, advertise: advertise, server: server, client: client, timeout: cfg.TransportTimeout}
	// The same check hashicorp/raft makes of a TCP transport: peers must be
	// able to dial the address this node advertises.
	if addr, ok := stream.Addr().(*net.TCPAddr); !ok || addr.IP == nil || addr.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("%w: raft address %s is not advertisable (set AdvertiseAddr)", atoll.ErrInvalid, stream.Addr())
	}
	return hraft.NewNetworkTransportWithLogger(stream, cfg.MaxPool, cfg.TransportTimeout, logger), nil
}

// Dial opens a TLS connection to a peer; the handshake is part of the
// dial and bounded by timeout.
func (s *tlsStreamLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	conn, err := tls.DialWithDialer(d, "tcp", string(address), s.client)
	if err != nil {
		return nil, fmt.Errorf("raft tls dial %s: %w", address, err)
	}
	return conn, nil
}

// Accept returns the next incoming connection. The TLS handshake runs on
// its first read or write (raft's accept loop must not wait for a slow
// client), within the transport timeout.
func (s *tlsStreamLayer) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return &serverConn{Conn: tls.Server(c, s.server), timeout: s.timeout}, nil
}

// Close stops listening.
func (s *tlsStreamLayer) Close() error { return s.ln.Close() }

// Addr returns the address peers dial: the advertised one, else the bound
// one.
func (s *tlsStreamLayer) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.ln.Addr()
}

// serverConn is an accepted connection whose handshake has a deadline:
// hashicorp/raft reads an inbound connection without one, so a client that
// connects and sends nothing would otherwise hold a goroutine forever.
type serverConn struct {
	*tls.Conn
	timeout time.Duration
	once    sync.Once
	err     error
}

func (c *serverConn) handshake() error {
	c.once.Do(func() {
		if c.timeout > 0 {
			c.Conn.SetDeadline(time.Now().Add(c.timeout))
		}
		if err := c.Conn.Handshake(); err != nil {
			c.err = fmt.Errorf("raft tls handshake with %s: %w", c.RemoteAddr(), err)
			return
		}
		c.Conn.SetDeadline(time.Time{})
	})
	return c.err
}

func (c *serverConn) Read(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c *serverConn) Write(b []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}
