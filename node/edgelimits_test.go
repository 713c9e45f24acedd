package node

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestEdgeConnDefaults(t *testing.T) {
	tests := []struct {
		name                  string
		nofile                uint64
		wantConc, wantPerAddr int
	}{
		{name: "unknown limit", nofile: 0, wantConc: fasthttp.DefaultConcurrency, wantPerAddr: 1024},
		{name: "tiny limit", nofile: 64, wantConc: 1, wantPerAddr: 4},
		{name: "ulimit 256", nofile: 256, wantConc: 96, wantPerAddr: 12},
		{name: "ulimit 512", nofile: 512, wantConc: 192, wantPerAddr: 24},
		{name: "ulimit 1024", nofile: 1024, wantConc: 384, wantPerAddr: 48},
		{name: "ulimit 65536", nofile: 65536, wantConc: 24576, wantPerAddr: 1024},
		{name: "ulimit 1048576", nofile: 1 << 20, wantConc: fasthttp.DefaultConcurrency, wantPerAddr: 1024},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conc, perAddr := edgeConnDefaults(tt.nofile)
			if conc != tt.wantConc || perAddr != tt.wantPerAddr {
				t.Errorf("edgeConnDefaults(%d) = %d, %d; want %d, %d", tt.nofile, conc, perAddr, tt.wantConc, tt.wantPerAddr)
			}
			if uint64(2*conc) > tt.nofile && tt.nofile > 128 {
				t.Errorf("edgeConnDefaults(%d): %d connections may take %d descriptors", tt.nofile, conc, 2*conc)
			}
		})
	}
}

func TestHTTPLimitsEdgeConnFlags(t *testing.T) {
	tests := []struct {
		name                  string
		conc, perAddr         int
		wantConc, wantPerAddr int
		wantErr               bool
	}{
		{name: "zeros fit the limit", wantConc: 192, wantPerAddr: 24},
		{name: "explicit values win", conc: 5000, perAddr: 7, wantConc: 5000, wantPerAddr: 7},
		{name: "no per-address limit", perAddr: NoConnLimit, wantConc: 192, wantPerAddr: NoConnLimit},
		{name: "below -1", perAddr: -2, wantErr: true},
		{name: "negative concurrency", conc: -1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := HTTPLimits{EdgeConcurrency: tt.conc, EdgeMaxConnsPerIP: tt.perAddr}.withDefaults(512)
			if (err != nil) != tt.wantErr {
				t.Fatalf("withDefaults: error %v, want error: %v", err, tt.wantErr)
			}
			if err == nil && (l.EdgeConcurrency != tt.wantConc || l.EdgeMaxConnsPerIP != tt.wantPerAddr) {
				t.Errorf("got %d, %d; want %d, %d", l.EdgeConcurrency, l.EdgeMaxConnsPerIP, tt.wantConc, tt.wantPerAddr)
			}
		})
	}
}

// scriptedListener answers Accept with errs in turn, then conn; during
// each failing Accept it records what the acceptor says of itself.
func TestEdgeLoggerRedactsAndThrottles(t *testing.T) {
	var out bytes.Buffer
	l := newEdgeLogger(slog.New(slog.NewTextHandler(&out, nil)))
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5555}
	secretErr := fmt.Errorf("cannot find colon in header: \"Authorization: Bearer S3CRET\"")
	for range 100 {
		l.Printf("error when serving connection %q<->%q: %v", local, remote, secretErr)
	}
	l.Printf("%.3f %s - %s", 1.5, "GET http://x/?token=S3CRET", "message")
	got := out.String()
	if strings.Contains(got, "S3CRET") {
		t.Errorf("the log holds a request's bytes:\n%s", got)
	}
	if n := strings.Count(got, "error when serving connection"); n != 1 {
		t.Errorf("%d lines for 100 like messages, want 1:\n%s", n, got)
	}
	if !strings.Contains(got, "192.0.2.7:5555") || !strings.Contains(got, "malformed or cut request") {
		t.Errorf("the line lacks the client address or the error's kind:\n%s", got)
	}
	if !strings.Contains(got, "[redacted]") {
		t.Errorf("a string argument was not redacted:\n%s", got)
	}
}

// TestAcceptorEndsEpisodeWithoutClients: once descriptors are back, the
// condition ends (and the node is ready again) even if no client connects
// to end it with a successful accept.
