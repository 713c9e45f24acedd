package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestStalledBodyEndToEnd sends a blob upload that announces 64 MiB,
// bursts 5 MiB and then stops: the node must cut it once the body has
// not moved for --api-read-timeout, whatever the burst was worth at
// --api-min-rate (5 MiB at 16 KiB/s would be five minutes of credit).
func TestStalledBodyEndToEnd(t *testing.T) {
	s := newServer(t)
	s.Flags = []string{"--api-read-timeout", "2s"}
	s.Start()

	conn, err := net.Dial("tcp", s.APIAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hash := strings.Repeat("ab", 32)
	fmt.Fprintf(conn, "PUT /v1/blobs/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n",
		hash, s.Token(), 64<<20)
	if _, err := conn.Write(make([]byte, 5<<20)); err != nil {
		t.Fatalf("send the burst: %v", err)
	}
	// The stall. The bound below only ends the test on the old code, far
	// past the timeout and far short of the credit the burst would earn.
	conn.SetReadDeadline(time.Now().Add(90 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("a body stalled after a 5 MiB burst was still open after 90s (--api-read-timeout 2s)")
	}
	if strings.HasPrefix(line, "HTTP/") && !strings.Contains(line, " 408 ") {
		t.Errorf("stalled upload answered %q, want 408 Request Timeout (or the connection closed)", strings.TrimSpace(line))
	}
	t.Logf("stalled upload ended with %q (%v)", strings.TrimSpace(line), err)
}
