package main

// End-to-end test of the edge's connections (serve/conn.go): answers of
// every size around the server's write buffer, from memory and from disk,
// arrive whole over kept-alive, pipelined and closing connections.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// sizedBody is the body of /s/<n>.txt: n bytes that differ per file.
func sizedBody(n int) string {
	line := fmt.Sprintf("file of %d bytes; ", n)
	return strings.Repeat(line, n/len(line)+1)[:n]
}

// TestEdgeAnswersOfEverySizeArriveWhole deploys files of 3,500 to 3,900
// bytes (their answers, header included, cross the edge's 4 KiB write
// buffer, one of them filling it exactly) and larger ones (16 KiB, the
// 64 KiB memory bound, a 300 KiB file sent from disk), then asks for each
// over one kept-alive connection, all at once pipelined on another, and
// each on its own connection with "Connection: close": every answer has
// the file's bytes, and nothing more.
func TestEdgeAnswersOfEverySizeArriveWhole(t *testing.T) {
	t.Parallel()
	s := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true})
	s.Start()
	files := map[string]string{}
	var sizes []int
	for n := 3500; n <= 3900; n++ {
		sizes = append(sizes, n)
	}
	sizes = append(sizes, 8192, 16384, 65536, 65537, 300000)
	for _, n := range sizes {
		files[fmt.Sprintf("s/%d.txt", n)] = sizedBody(n)
	}
	dir := t.TempDir()
	writeTree(t, dir, files)
	s.MustCLI("site", "create", "sizes")
	s.MustCLI("deploy", dir, "--site", "sizes")

	request := func(n int, extra string) string {
		return fmt.Sprintf("GET /s/%d.txt HTTP/1.1\r\nHost: sizes.localhost\r\n%s\r\n", n, extra)
	}
	// read reads one answer from br and checks it is file n's.
	read := func(br *bufio.Reader, n int, how string) {
		t.Helper()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s, /s/%d.txt: %v", how, n, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || string(body) != sizedBody(n) {
			t.Fatalf("%s, /s/%d.txt: %d, %d bytes, %v; want 200 and the file's %d bytes", how, n, resp.StatusCode, len(body), err, n)
		}
	}
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", s.HTTPAddr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		return c
	}

	// Warm the edge's memory cache so the next rounds answer from memory
	// (one writev of header and body) as well as from disk.
	for round := range 2 {
		c := dial()
		br := bufio.NewReader(c)
		for _, n := range sizes {
			if _, err := io.WriteString(c, request(n, "")); err != nil {
				t.Fatal(err)
			}
			read(br, n, fmt.Sprintf("keep-alive round %d", round))
		}
		c.Close()
	}

	c := dial()
	var all bytes.Buffer
	for _, n := range sizes {
		all.WriteString(request(n, ""))
	}
	go c.Write(all.Bytes()) // the edge answers while this is still sending
	br := bufio.NewReader(c)
	for _, n := range sizes {
		read(br, n, "pipelined")
	}
	c.Close()

	exact := false
	for _, n := range sizes {
		c := dial()
		if _, err := io.WriteString(c, request(n, "Connection: close\r\n")); err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(c) // to the edge's close: nothing may follow the answer
		c.Close()
		if err != nil {
			t.Fatalf("Connection: close, /s/%d.txt: %v", n, err)
		}
		exact = exact || len(raw) == 4096
		br := bufio.NewReader(bytes.NewReader(raw))
		read(br, n, "Connection: close")
		if rest, _ := io.ReadAll(br); len(rest) > 0 {
			t.Fatalf("Connection: close, /s/%d.txt: %d bytes after the answer", n, len(rest))
		}
	}
	if !exact {
		t.Errorf("no answer was exactly the 4096 bytes of the write buffer: the sizes no longer cover that case")
	}
}
