package raft

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	hraft "github.com/hashicorp/raft"
)

// testCA is a throwaway certificate authority. (package pki has the real
// generator behind `atoll certs init`; raft's tests keep their own so that
// raft depends on no other part of Atoll.)
type testCA struct {
	t    *testing.T
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{t: t, cert: cert, key: key, pool: pool}
}

// config returns the raft TLS config of a node whose certificate this CA
// signs, for 127.0.0.1.
func (ca *testCA) config(name string) *tls.Config {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		ClientCAs:    ca.pool,
	}
}

// A cluster on the TLS stream layer elects, replicates and converges; a
// node whose certificate another CA signed, or that speaks plain TCP, is
// added to the configuration but never receives a single entry.
func TestTLSCluster(t *testing.T) {
	ca := newTestCA(t, "cluster CA")
	c := newCluster(t, 3, func(cfg *Config) { cfg.TLS = ca.config(cfg.ID) })
	c.apply(seedCommands()...)
	c.converged()

	other := newTestCA(t, "another CA")
	intruders := []struct {
		id    string
		tls   *tls.Config
		voter bool
	}{
		{id: "foreign", tls: other.config("foreign"), voter: true},
		{id: "plain", tls: nil},
	}
	var stores []*Store
	for _, in := range intruders {
		cfg := testConfig(t, in.id, t.TempDir())
		cfg.TLS = in.tls
		s := openStore(t, cfg)
		stores = append(stores, s)
		add := c.leader().AddNonvoter
		if in.voter {
			add = c.leader().AddVoter // 3 of 4 voters still make a quorum
		}
		if err := add(ctxT(t, 10*time.Second), in.id, s.Addr()); err != nil {
			t.Fatalf("add %s: %v", in.id, err)
		}
	}
	// Watch the leader's heartbeats to the intruders: once each has failed
	// a few times after the write below, the leader has tried to send them
	// the entry and could not. A member with a valid certificate catches up
	// at its first heartbeat.
	failed := watchFailedHeartbeats(t, c.leader())
	c.apply(CreateSite{Name: "after-intruders", Created: t0})
	want := c.leader().CommitIndex()
	for _, in := range intruders {
		failed.await(t, in.id, 3)
	}
	for i, s := range stores {
		if got := s.FSM.AppliedIndex(); got != 0 {
			t.Errorf("%s applied up to %d of %d: it got entries without a certificate of the cluster CA", intruders[i].id, got, want)
		}
		if sites, _ := s.Sites(); len(sites) != 0 {
			t.Errorf("%s holds %d sites, want none", intruders[i].id, len(sites))
		}
	}
	// The accepting side checks too: a client that trusts the cluster CA
	// but presents a foreign certificate, or none, is cut off in the
	// handshake instead of reaching raft's RPC decoder.
	for name, certs := range map[string][]tls.Certificate{"foreign cert": other.config("x").Certificates, "no cert": nil} {
		conn, err := tls.Dial("tcp", c.leader().Addr(), &tls.Config{Certificates: certs, RootCAs: ca.pool})
		if err != nil {
			continue // refused during the client's part of the handshake: fine
		}
		conn.SetDeadline(time.Now().Add(2 * time.Second))
		conn.Write([]byte{0}) // an RPC type byte; never read if the handshake fails
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
		if ne, ok := err.(net.Error); err == nil || ok && ne.Timeout() {
			t.Errorf("%s: the raft listener accepted the connection (read: %v), want a handshake failure", name, err)
		}
	}

	// The cluster itself still works.
	c.apply(CreateSite{Name: "still-writable", Created: t0})
	for _, s := range c.nodes {
		if s == nil {
			continue
		}
		if err := s.WaitApplied(ctxT(t, 10*time.Second), c.leader().CommitIndex()); err != nil {
			t.Fatalf("%s: %v", s.ID(), err)
		}
	}
}

func TestTLSConfigChecked(t *testing.T) {
	ca := newTestCA(t, "ca")
	good := ca.config("n1")
	cases := []struct {
		name string
		cfg  *tls.Config
	}{
		{name: "no certificate", cfg: &tls.Config{ClientCAs: ca.pool}},
		{name: "no CA", cfg: &tls.Config{Certificates: good.Certificates}},
	}
	for _, tc := range cases {
		cfg := testConfig(t, "n1", t.TempDir())
		cfg.TLS = tc.cfg
		if s, err := Open(cfg); err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded, want an error", tc.name)
		}
	}
}

// heartbeatFailures counts the leader's failed heartbeats per peer.
type heartbeatFailures struct {
	mu     sync.Mutex
	counts map[string]int
	wake   chan struct{}
}

// watchFailedHeartbeats counts, from now on, the failed heartbeats of
// leader s to each peer (hashicorp/raft's FailedHeartbeatObservation).
func watchFailedHeartbeats(t *testing.T, s *Store) *heartbeatFailures {
	h := &heartbeatFailures{counts: map[string]int{}, wake: make(chan struct{}, 1)}
	ch := make(chan hraft.Observation, 64)
	obs := hraft.NewObserver(ch, false, func(o *hraft.Observation) bool {
		_, ok := o.Data.(hraft.FailedHeartbeatObservation)
		return ok
	})
	s.raft.RegisterObserver(obs)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case o := <-ch:
				f := o.Data.(hraft.FailedHeartbeatObservation)
				h.mu.Lock()
				h.counts[string(f.PeerID)]++
				h.mu.Unlock()
				select {
				case h.wake <- struct{}{}:
				default:
				}
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() {
		s.raft.DeregisterObserver(obs)
		close(done)
	})
	return h
}

// await returns once peer id has failed n heartbeats since the watch
// began.
func (h *heartbeatFailures) await(t *testing.T, id string, n int) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		h.mu.Lock()
		got := h.counts[id]
		h.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-h.wake:
		case <-timeout:
			t.Fatalf("the leader failed %d heartbeats to %s, want %d", got, id, n)
		}
	}
}
