package node_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/builder/client"
	"github.com/atoll-hosting/atoll/node"
	"github.com/atoll-hosting/atoll/node/nodetest"
)

// limitedNode is one node with a short header timeout on both listeners
// and a deploy limit of two files.
func limitedNode(t *testing.T) *nodetest.Member {
	t.Helper()
	c := nodetest.New(t, 1, 0, func(cfg *node.Config) {
		cfg.APIReadHeaderTimeout = time.Second
		cfg.EdgeReadTimeout = time.Second
		cfg.MaxFiles = 2
	})
	return c.Members[0]
}

func hostPort(t *testing.T, url string) string {
	t.Helper()
	_, hp, ok := strings.Cut(url, "://")
	if !ok {
		t.Fatalf("url %q", url)
	}
	return hp
}

// slowloris sends a request's headers one byte every 500 ms and returns
// when the server closed the connection (at most 10 s) and how many bytes
// it had sent by then.
func slowloris(t *testing.T, addr string) (time.Duration, int) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		io.Copy(io.Discard, conn) // whatever it answers, until it hangs up
		closed <- time.Since(start)
	}()
	req := "GET /healthz HTTP/1.1\r\nHost: demo.localhost\r\nUser-Agent: slowloris\r\nX-Padding: " + strings.Repeat("a", 40) + "\r\n\r\n"
	for i := range len(req) {
		select {
		case d := <-closed:
			return d, i
		case <-time.After(500 * time.Millisecond):
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("connection still open after %s and %d bytes of headers", time.Since(start), i)
		}
		if _, err := conn.Write([]byte{req[i]}); err != nil {
			break
		}
	}
	select {
	case d := <-closed:
		return d, len(req)
	case <-time.After(5 * time.Second):
		t.Fatal("connection still open after the whole request")
		return 0, 0
	}
}

// bigHeader sends a request with a header of size bytes and returns the
// status line of the answer.
func bigHeader(t *testing.T, addr string, size int) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	go fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: demo.localhost\r\nX-Big: %s\r\n\r\n", strings.Repeat("b", size))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer to a %d-byte header: %v", size, err)
	}
	return strings.TrimSpace(line)
}

func TestSlowlorisIsDisconnected(t *testing.T) {
	m := limitedNode(t)
	for name, addr := range map[string]string{
		"api":  hostPort(t, m.Node.APIURL()),
		"edge": hostPort(t, m.Node.EdgeURL()),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			took, sent := slowloris(t, addr)
			t.Logf("disconnected after %s, %d header bytes", took.Round(time.Millisecond), sent)
			if took < 900*time.Millisecond || took > 3*time.Second {
				t.Errorf("disconnected after %s, want about the 1s header timeout", took)
			}
		})
	}
}

func TestOversizedHeaderIs431(t *testing.T) {
	m := limitedNode(t) // default header limits: API 64 KiB, edge 8 KiB
	tests := []struct {
		name string
		addr string
		size int
		want string
	}{
		{"api within limit", hostPort(t, m.Node.APIURL()), 32 << 10, "200"},
		{"api over limit", hostPort(t, m.Node.APIURL()), 128 << 10, "431"},
		{"edge within limit", hostPort(t, m.Node.EdgeURL()), 4 << 10, "404"}, // no such site
		{"edge over limit", hostPort(t, m.Node.EdgeURL()), 16 << 10, "431"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bigHeader(t, tt.addr, tt.size); !strings.Contains(got, " "+tt.want+" ") {
				t.Errorf("%d-byte header: %q, want %s", tt.size, got, tt.want)
			}
		})
	}
}

func TestEdgeRefusesRequestBody(t *testing.T) {
	m := limitedNode(t)
	edge := m.Node.EdgeURL()
	tests := []struct {
		name, method string
		body         io.Reader
		length       int64 // announced Content-Length; -1 for chunked
		want         int
	}{
		{"plain GET", "GET", nil, 0, http.StatusNotFound},
		{"GET with a body", "GET", strings.NewReader("hello"), 5, http.StatusRequestEntityTooLarge},
		{"POST with a body", "POST", strings.NewReader("a=1&b=2"), 7, http.StatusRequestEntityTooLarge},
		{"chunked body", "PUT", strings.NewReader("chunk"), -1, http.StatusRequestEntityTooLarge},
		{"large body announced", "POST", io.LimitReader(zeros{}, 8<<20), 8 << 20, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, edge+"/", tt.body)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "nosuch.localhost"
			req.ContentLength = tt.length
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				// The edge may hang up before taking all of a large body.
				if tt.length > edgeBodyLimit && (errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "broken pipe")) {
					t.Logf("refused by closing: %v", err)
					return
				}
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s %s: %d, want %d", tt.method, tt.name, resp.StatusCode, tt.want)
			}
		})
	}
}

// edgeBodyLimit is more than the edge reads of a body before refusing.
const edgeBodyLimit = 4 << 10

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestDeployOverMaxFilesIs413(t *testing.T) {
	m := limitedNode(t)
	cl := client.New(m.Node.APIURL(), nodetest.Token)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.CreateSite(ctx, "blog", nil, 0); err != nil {
		t.Fatal(err)
	}
	files := func(n int) map[string]string {
		out := map[string]string{}
		for i := range n {
			out[fmt.Sprintf("/%d.html", i)] = sha(fmt.Sprint(i))
		}
		return out
	}
	if _, err := cl.CreateDeploy(ctx, "blog", files(2)); err != nil {
		t.Fatalf("deploy of 2 files (the limit): %v", err)
	}
	var ae *client.Error
	_, err := cl.CreateDeploy(ctx, "blog", files(3))
	if !errors.As(err, &ae) || ae.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("digest deploy of 3 files = %v, want 413", err)
	}
	t.Logf("digest deploy: %v", err)

	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	for i := range 3 {
		body := fmt.Sprintf("page %d", i)
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%d.html", i), Mode: 0o644, Size: int64(len(body))})
		io.WriteString(tw, body)
	}
	tw.Close()
	_, err = cl.UploadTar(ctx, "blog", &tarball, false, true)
	if !errors.As(err, &ae) || ae.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("tar deploy of 3 files = %v, want 413", err)
	}
	t.Logf("tar deploy: %v", err)
}
