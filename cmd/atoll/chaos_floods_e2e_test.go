//go:build linux

package main

// The floods of TestChaos: what a hostile visitor and a hostile tenant do
// to a node. Both are bounded so that they cannot exhaust the test
// machine: a visitor flood holds floodConns connections, a tenant flood
// sends floodManifests manifests of floodHashes entries (at most
// floodManifestRuns times in a run) and one tar body of floodTarSent bytes.

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/atoll-hosting/atoll/atolltest"
)

const (
	// floodConns idle TCP connections are held on one edge's HTTP port
	// while its soft descriptor limit is floodNofile: more connections
	// than descriptors, as a visitor with one machine can do to a node
	// started with `ulimit -n 512`.
	floodConns  = 700
	floodNofile = 512

	floodSite         = "chaos-flood"
	floodManifests    = 2        // abandoned deploys per tenant flood
	floodHashes       = 5_000    // entries in each, hashes never uploaded
	floodManifestRuns = 3        // tenant floods that send manifests; later ones only stall a tar
	floodTarDeclared  = 64 << 20 // the stalled tar's Content-Length
	floodTarSent      = 1 << 20  // what it sends before it stalls
)

// visitorFlood holds floodConns idle connections on a random edge whose
// soft descriptor limit is lowered to floodNofile, for a few seconds, then
// releases them and restores the limit. The edge is under a fault until it
// answers /readyz again; it must then accept connections on its edge port.
func (c *chaos) visitorFlood(ctx context.Context, rng *rand.Rand) {
	n := c.edges()[rng.IntN(chaosEdges)]
	hold := time.Duration(2000+rng.IntN(2000)) * time.Millisecond
	end := c.faultOn(n, string(faultVisitorFlood))
	start := time.Now()
	pid := n.Pid()
	old, err := setSoftNofile(pid, floodNofile)
	if err != nil {
		c.harnessError("visitor flood: lower %s's descriptor limit: %v", n.ID, err)
		end(ctx)
		return
	}
	conns, dialErr := c.holdConns(ctx, n.HTTPAddr, floodConns)
	sleepCtx(ctx, time.Until(start.Add(hold)))
	for _, conn := range conns {
		conn.Close()
	}
	if _, err := setSoftNofile(pid, old); err != nil && n.Pid() == pid {
		c.harnessError("visitor flood: restore %s's descriptor limit: %v", n.ID, err)
	}
	released := time.Now()
	note := ""
	if dialErr != nil {
		note = fmt.Sprintf(" (dials stopped at %d: %v)", len(conns), dialErr)
	}
	if !c.edgeAccepts(ctx, n) {
		// An edge must outlast descriptor exhaustion: one that no longer
		// accepts fails the run.
		c.harnessError("visitor flood: %s's edge no longer accepts connections after the flood", n.ID)
	}
	end(ctx)
	c.logAt(start, "visitor flood: %d idle connections on %s's edge (soft descriptor limit %d) for %s%s; ready again %s after the release",
		len(conns), n.ID, floodNofile, hold.Round(10*time.Millisecond), note, time.Since(released).Round(10*time.Millisecond))
}

// holdConns opens up to k TCP connections to addr from the client
// namespace, 16 at a time, and returns those it opened with the first dial
// error, if any.
func (c *chaos) holdConns(ctx context.Context, addr string, k int) ([]net.Conn, error) {
	var mu sync.Mutex
	var conns []net.Conn
	var first error
	var wg sync.WaitGroup
	next := make(chan struct{})
	for range 16 {
		wg.Go(func() {
			for range next {
				dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				conn, err := c.net.Dial(dctx, "tcp", addr)
				cancel()
				mu.Lock()
				if err != nil && first == nil {
					first = err
				} else if err == nil {
					conns = append(conns, conn)
				}
				mu.Unlock()
			}
		})
	}
	for range k {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	return conns, first
}

// edgeAccepts reports whether n's edge answers an HTTP request (any
// status) on a new connection, trying up to five times, each bounded to
// 3s. A kept-alive connection would not tell: an edge that stopped
// accepting still serves those it had.
func (c *chaos) edgeAccepts(ctx context.Context, n *chaosNode) bool {
	tr := c.net.Transport()
	tr.DisableKeepAlives = true
	defer tr.CloseIdleConnections()
	fresh := &http.Client{Transport: tr}
	for range 5 {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, _, err := atolltest.Fetch(rctx, fresh, "GET", "http://"+n.HTTPAddr+"/", c.sites[0]+".localhost")
		cancel()
		if err == nil {
			return true
		}
		sleepCtx(ctx, 500*time.Millisecond)
	}
	return false
}

// setSoftNofile sets the soft RLIMIT_NOFILE of process pid to soft (at
// most its hard limit) and returns the soft limit it had.
func setSoftNofile(pid int, soft uint64) (uint64, error) {
	var cur syscall.Rlimit
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_NOFILE, 0, uintptr(unsafe.Pointer(&cur)), 0, 0); e != 0 {
		return 0, e
	}
	lim := syscall.Rlimit{Cur: min(soft, cur.Max), Max: cur.Max}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_NOFILE, uintptr(unsafe.Pointer(&lim)), 0, 0, 0); e != 0 {
		return 0, e
	}
	return cur.Cur, nil
}

// tenantFlood is a hostile deploy token at work on a random core, on a
// site of its own: floodManifests deploys whose floodHashes hashes are
// never uploaded (abandoned), while a tar upload declares floodTarDeclared
// bytes, sends floodTarSent and stalls for a few seconds before it hangs
// up. No node is under a fault: every node must keep serving.
func (c *chaos) tenantFlood(ctx context.Context, rng *rand.Rand) {
	n := c.cores()[rng.IntN(chaosCores)]
	token, err := c.floodToken(ctx, n)
	if err != nil {
		c.harnessError("tenant flood: %v", err)
		return
	}
	c.mu.Lock()
	c.faultCount[string(faultTenantFlood)]++
	runs := c.faultCount[string(faultTenantFlood)]
	c.mu.Unlock()
	hold := time.Duration(2000+rng.IntN(2000)) * time.Millisecond
	start := time.Now()
	var tarNote string
	var wg sync.WaitGroup
	wg.Go(func() { tarNote = c.stalledTar(ctx, n, token, hold) })
	var notes []string
	if runs <= floodManifestRuns {
		for range floodManifests {
			notes = append(notes, c.abandonedManifest(ctx, rng, n, token))
		}
	}
	wg.Wait()
	c.logAt(start, "tenant flood on %s: manifests [%s]; stalled tar: %s", n.ID, strings.Join(notes, ", "), tarNote)
}

// floodToken creates floodSite and a deploy token for it, once, and
// returns the token.
func (c *chaos) floodToken(ctx context.Context, n *chaosNode) (string, error) {
	c.mu.Lock()
	token := c.floodTok
	c.mu.Unlock()
	if token != "" {
		return token, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	status, b, err := c.apiCall(cctx, n, "POST", "/v1/sites", strings.NewReader(`{"name":"`+floodSite+`"}`))
	if err != nil || (status != http.StatusCreated && status != http.StatusConflict) {
		return "", fmt.Errorf("create site %s: %d %s %v", floodSite, status, b, err)
	}
	status, b, err = c.apiCall(cctx, n, "POST", "/v1/tokens", strings.NewReader(`{"site":"`+floodSite+`","name":"chaos tenant"}`))
	var created struct{ Token string }
	if err != nil || status != http.StatusCreated || json.Unmarshal(b, &created) != nil || created.Token == "" {
		return "", fmt.Errorf("create a deploy token: %d %s %v", status, b, err)
	}
	c.mu.Lock()
	c.floodTok = created.Token
	c.mu.Unlock()
	return created.Token, nil
}

// abandonedManifest creates a deploy of floodHashes random hashes that
// nobody will upload, and says how it went.
func (c *chaos) abandonedManifest(ctx context.Context, rng *rand.Rand, n *chaosNode, token string) string {
	files := make(map[string]string, floodHashes)
	h := make([]byte, 32)
	for i := range floodHashes {
		for j := range h {
			h[j] = byte(rng.Uint32())
		}
		files[fmt.Sprintf("/f/%d.bin", i)] = hex.EncodeToString(h)
	}
	body, err := json.Marshal(map[string]any{"files": files})
	if err != nil {
		return err.Error()
	}
	mctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	status, b, err := n.API(mctx, "POST", "/v1/sites/"+floodSite+"/deploys", token, "application/json", bytes.NewReader(body))
	switch {
	case err != nil:
		return err.Error()
	case status != http.StatusCreated:
		return fmt.Sprintf("%d %s", status, firstLine(b))
	}
	return fmt.Sprintf("%d entries, %d", floodHashes, status)
}

// stalledTar sends a tar upload that declares floodTarDeclared bytes,
// sends floodTarSent, waits hold and hangs up; it says what the node did.
func (c *chaos) stalledTar(ctx context.Context, n *chaosNode, token string, hold time.Duration) string {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := c.net.Dial(dctx, "tcp", n.APIAddr)
	cancel()
	if err != nil {
		return "dial: " + err.Error()
	}
	defer conn.Close()
	var head bytes.Buffer
	tw := tar.NewWriter(&head)
	if err := tw.WriteHeader(&tar.Header{Name: "big.bin", Mode: 0o644, Size: floodTarDeclared - 1024, Typeflag: tar.TypeReg}); err != nil {
		return err.Error()
	}
	fmt.Fprintf(conn, "POST /v1/sites/%s/deploys HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/x-tar\r\nContent-Length: %d\r\n\r\n",
		floodSite, n.APIAddr, token, floodTarDeclared)
	conn.SetWriteDeadline(time.Now().Add(hold))
	sent, err := conn.Write(append(head.Bytes(), make([]byte, floodTarSent-head.Len())...))
	if err != nil {
		return fmt.Sprintf("sent %d bytes: %v", sent, err)
	}
	// Whatever the node answers while the body stalls (a cut, a 4xx) is
	// read until hold passes.
	conn.SetReadDeadline(time.Now().Add(hold))
	answer, _ := io.ReadAll(io.LimitReader(conn, 4096))
	if len(answer) > 0 {
		return fmt.Sprintf("sent %d bytes, the node answered %q", sent, firstLine(answer))
	}
	return fmt.Sprintf("sent %d bytes, stalled %s, hung up", sent, hold.Round(10*time.Millisecond))
}

// firstLine is the first line of b, for a log.
func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(s)
}
