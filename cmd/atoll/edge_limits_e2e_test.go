package main

// End-to-end tests of what one visitor can do to a node's descriptors and
// log: the real binary under a low descriptor limit, flooded with idle
// connections, and with malformed requests carrying secrets.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// lowFDServer is a bootstrapping node run with at most nofile descriptors
// (soft and hard limit, set by a shell before it execs the binary), whose
// edge client dials from 127.0.0.2: another client address than the flood's
// (127.0.0.1).
func lowFDServer(t *testing.T, nofile int, flags ...string) *atolltest.Server {
	t.Helper()
	wrapper := filepath.Join(t.TempDir(), "atoll-lowfd")
	script := fmt.Sprintf("#!/bin/sh\nulimit -n %d || exit 1\nexec %q \"$@\"\n", nofile, atolltest.Bin())
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	other := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	edge := &http.Client{
		Transport:     &http.Transport{DialContext: other.DialContext, DisableCompression: true},
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return atolltest.NewServer(t, atolltest.NodeConfig{Bin: wrapper, Bootstrap: true, Flags: flags, EdgeClient: edge})
}

// deployHello publishes a one-page site "hello" and returns its page.
func deployHello(t *testing.T, s *atolltest.Server) string {
	t.Helper()
	page := "<h1>still here</h1>"
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"index.html": page})
	s.MustCLI("site", "create", "hello")
	s.MustCLI("deploy", dir, "--site", "hello")
	return page
}

// wantPage fails the test unless a visitor from 127.0.0.2 gets page from
// the site "hello" on s's edge; when says when, for the message.
func wantPage(t *testing.T, s *atolltest.Server, page, when string) {
	t.Helper()
	resp, body := s.Get("GET", "hello.localhost", "/")
	if resp.StatusCode != http.StatusOK || body != page {
		t.Fatalf("%s, a visitor got %d %q, want 200 %q", when, resp.StatusCode, body, page)
	}
}

// flood opens n connections to addr from 127.0.0.1, each sending prefix
// (nothing if empty), and closes them when the test ends or closeAll is
// called.
type flood struct{ conns []net.Conn }

func (f *flood) open(t *testing.T, addr string, n int, prefix string) {
	t.Helper()
	for range n {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatalf("flood: dial %d: %v", len(f.conns), err)
		}
		f.conns = append(f.conns, c)
		if prefix != "" {
			c.Write([]byte(prefix)) // a connection the edge refused may fail this: no matter
		}
	}
}

func (f *flood) closeAll() {
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

// readyz asks /readyz over the API client's kept-alive connection, bounded
// to 5s, and returns the status and body (0 and the error on none).
func readyz(t *testing.T, s *atolltest.Server) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	status, body, err := s.Node.API(ctx, "GET", "/readyz", "", "", nil)
	if err != nil {
		return 0, err.Error()
	}
	return status, string(body)
}

// TestEdgeDefaultsFitTheDescriptorLimit floods a node limited to 512
// descriptors with 700 idle connections from one address, with no limit
// flag given: the default per-address limit, derived from the descriptor
// limit, keeps the node from running out, so another visitor is served and
// the node stays ready, during the flood and after it.
func TestEdgeDefaultsFitTheDescriptorLimit(t *testing.T) {
	s := lowFDServer(t, 512)
	s.Start()
	page := deployHello(t, s)
	if out := s.Output(); !strings.Contains(out, "descriptor_limit=512") {
		t.Errorf("node start log does not state the descriptor limit it fits to:\n%s", out)
	}

	var f flood
	defer f.closeAll()
	f.open(t, s.HTTPAddr, 700, "")

	wantPage(t, s, page, "during the flood")
	if status, why := readyz(t, s); status != http.StatusOK {
		t.Errorf("during the flood /readyz answered %d %s, want 200", status, why)
	}
	f.closeAll()
	wantPage(t, s, page, "after the flood")
}

// TestEdgeOutlastsDescriptorExhaustion lifts the connection limits of a
// node limited to 512 descriptors and holds open connections that each
// began a request (so none is idle to shed) until the edge cannot accept:
// /readyz must say so, and once the connections close the node must be
// ready again and the edge serve (fasthttp alone stops accepting for good
// at the first "too many open files").
func TestEdgeOutlastsDescriptorExhaustion(t *testing.T) {
	s := lowFDServer(t, 512, "--edge-concurrency", "100000", "--edge-max-conns-per-ip", "100000",
		"--edge-read-timeout", "10m")
	s.Start()
	page := deployHello(t, s)
	if status, why := readyz(t, s); status != http.StatusOK { // the API connection the checks below reuse
		t.Fatalf("/readyz: %d %s", status, why)
	}

	var f flood
	defer f.closeAll()
	const batch, most = 50, 1500
	var why string
	for {
		f.open(t, s.HTTPAddr, batch, "GET / HTTP/1.1\r\n")
		status, body := readyz(t, s)
		if status == http.StatusServiceUnavailable && strings.Contains(body, "not accepting") {
			why = body
			break
		}
		if len(f.conns) >= most {
			t.Fatalf("%d connections held and /readyz still answers %d %s: want 503 saying the edge is not accepting", len(f.conns), status, body)
		}
	}
	if !strings.Contains(why, "edge") || !strings.Contains(why, "descriptors") {
		t.Errorf("/readyz while the edge cannot accept: %s, want it to name the edge and the descriptors", why)
	}

	f.closeAll()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx, "/readyz"); err != nil {
		t.Fatalf("after the connections closed: %v", err)
	}
	wantPage(t, s, page, "after the connections closed")
	if out := s.Output(); strings.Contains(out, "edge server stopped") {
		t.Errorf("the edge server stopped:\n%s", out)
	}
}

// TestEdgeLogKeepsNoSecrets sends a flood of malformed requests carrying a
// bearer token and a cookie: the node's log must hold neither, and a
// bounded number of lines about them; nor does the bootstrap's output hold
// the generated admin token (it is in the data dir's token file).
func TestEdgeLogKeepsNoSecrets(t *testing.T) {
	s := newServer(t)
	s.Start()
	token := s.Token()
	if out := s.Output(); strings.Contains(out, token) {
		t.Errorf("the node's output holds the generated admin token:\n%s", out)
	}

	const secret = "S3CRET-bearer-value"
	const cookie = "S3CRET-cookie-value"
	malformed := "GET / HTTP/1.1\r\nHost: x.localhost\r\nAuthorization: Bearer " + secret +
		"\r\nCookie: session=" + cookie + "\r\nthis header has no colon\r\n\r\n"
	const requests = 200
	for i := range requests {
		c, err := net.DialTimeout("tcp", s.HTTPAddr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(malformed))
		status, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if i == 0 && !strings.Contains(status, " 400 ") {
			t.Fatalf("malformed request answered %q, want a 400", status)
		}
	}
	// The line about the first one is written before its connection is
	// closed; wait until it reaches the output.
	const marker = "error when serving connection"
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(s.Output(), marker); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no line about the malformed requests in the output:\n%s", s.Output())
		}
	}
	out := s.Output()
	for _, leak := range []string{secret, cookie, token} {
		if strings.Contains(out, leak) {
			t.Errorf("the node's log holds %q:\n%s", leak, out)
		}
	}
	// One line per 10s at most: 200 requests fit in a few seconds.
	if n := strings.Count(out, marker); n > 3 {
		t.Errorf("%d lines about %d malformed requests, want them rate-limited to a few", n, requests)
	}
}

// TestEdgeShedsIdleConnections lifts the connection limits of a node
// limited to 512 descriptors and opens more idle connections (that send
// nothing) than it has descriptors: the edge sheds the longest-idle ones
// to keep accepting, so another visitor is served during the flood.
func TestEdgeShedsIdleConnections(t *testing.T) {
	s := lowFDServer(t, 512, "--edge-concurrency", "100000", "--edge-max-conns-per-ip", "100000",
		"--edge-read-timeout", "10m", "--edge-idle-timeout", "10m")
	s.Start()
	page := deployHello(t, s)

	var f flood
	defer f.closeAll()
	f.open(t, s.HTTPAddr, 700, "")
	wantPage(t, s, page, "during a flood of idle connections")
	out := s.Output()
	if !strings.Contains(out, "cannot accept connections") {
		t.Errorf("the node never ran out of descriptors (the test proves nothing):\n%s", out)
	}
	if strings.Contains(out, "edge server stopped") {
		t.Errorf("the edge server stopped:\n%s", out)
	}
}

// TestAPIOutlastsDescriptorExhaustion floods the API port of a node
// limited to 512 descriptors with more idle connections than it has
// descriptors, each allowed to wait for its headers for 10 minutes: the
// node sheds the longest-waiting ones to keep accepting, so a new
// connection gets an answer while the flood is held (net/http alone would
// retry accepting until the flood's connections time out).
func TestAPIOutlastsDescriptorExhaustion(t *testing.T) {
	s := lowFDServer(t, 512, "--api-read-header-timeout", "10m", "--api-idle-timeout", "10m")
	s.Start()

	var f flood
	defer f.closeAll()
	f.open(t, s.APIAddr, 700, "")
	s.APIClient.CloseIdleConnections() // ask on a new connection
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx, "/readyz"); err != nil {
		t.Fatalf("during a flood of idle API connections: %v", err)
	}
	if out := s.Output(); !strings.Contains(out, "cannot accept connections") {
		t.Errorf("the node never ran out of descriptors (the test proves nothing):\n%s", out)
	}
}
