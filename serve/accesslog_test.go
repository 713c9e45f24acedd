package serve

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func accessInfo(path string) *RequestInfo {
	var req fasthttp.Request
	req.SetRequestURI(path)
	req.SetHost("blog.atoll.test")
	req.Header.Set("User-Agent", "ua \"quoted\"\x01")
	req.Header.Set("Referer", "https://ref.example/\xff")
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	return &RequestInfo{Ctx: &ctx, Site: "blog", Deploy: "d1", Status: 200, Bytes: 42, Duration: 1500 * time.Microsecond, Outcome: OutcomeDisk}
}

func TestAccessLogLines(t *testing.T) {
	var out bytes.Buffer
	a, err := NewAccessLog(AccessLogConfig{Path: "-", Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	a.Log(accessInfo("/a%20b/ü.html"))
	a.Log(accessInfo("/x"))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), out.String())
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("line is not JSON: %v\n%s", err, lines[0])
	}
	want := map[string]any{
		"host": "blog.atoll.test", "site": "blog", "deploy": "d1", "method": "GET",
		"path": "/a b/ü.html", "status": 200.0, "bytes": 42.0, "duration_ms": 1.5,
		"user_agent": "ua \"quoted\"\x01", "referer": "https://ref.example/\ufffd", "outcome": "disk",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	for _, k := range []string{"time", "remote"} {
		if _, ok := got[k]; !ok {
			t.Errorf("line lacks %q: %s", k, lines[0])
		}
	}
	if a.Written() != 2 || a.Dropped() != 0 {
		t.Errorf("written %d, dropped %d; want 2, 0", a.Written(), a.Dropped())
	}
}

// blockingWriter blocks every Write until release is closed.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	buf     bytes.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	select {
	case w.entered <- struct{}{}:
	default:
	}
	<-w.release
	return w.buf.Write(p)
}

// TestAccessLogNeverBlocks: with the writer stuck, Log keeps returning and
// counts what it drops once the buffer is full.
func TestAccessLogNeverBlocks(t *testing.T) {
	w := &blockingWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	a, err := NewAccessLog(AccessLogConfig{Path: "-", Stdout: w, Buffer: 4096})
	if err != nil {
		t.Fatal(err)
	}
	info := accessInfo("/x")
	a.Log(info)
	<-w.entered // the writer holds the first line and is stuck
	for range 1000 {
		a.Log(info)
	}
	if a.Dropped() == 0 {
		t.Fatal("nothing dropped with the writer stuck and a 4 KiB buffer")
	}
	close(w.release)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := a.Written()+a.Dropped(), uint64(1001); got != want {
		t.Errorf("written %d + dropped %d = %d, want %d", a.Written(), a.Dropped(), got, want)
	}
	if n := uint64(bytes.Count(w.buf.Bytes(), []byte("\n"))); n != a.Written() {
		t.Errorf("%d lines in the output, Written says %d", n, a.Written())
	}
}

// TestAccessLogReopen: after a rename and Reopen, lines go to a new file at
// the path, as logrotate expects.
func TestAccessLogReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	a, err := NewAccessLog(AccessLogConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	a.Log(accessInfo("/before"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	a.Reopen() // writes /before to the renamed file, then reopens
	a.Log(accessInfo("/after"))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, want string }{{path + ".1", "/before"}, {path, "/after"}} {
		f, err := os.Open(c.file)
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var l struct{ Path string }
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, l.Path)
		}
		f.Close()
		if len(paths) != 1 || paths[0] != c.want {
			t.Errorf("%s holds %v, want [%s]", filepath.Base(c.file), paths, c.want)
		}
	}
}

// TestEdgeAccessLogged: the edge hands every request to the access log,
// with its site and deploy.
func TestEdgeAccessLogged(t *testing.T) {
	e := newRealEdge(t)
	var out bytes.Buffer
	a, err := NewAccessLog(AccessLogConfig{Path: "-", Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	e.h.stats.SetAccessLog(a)
	serveCtx(e.h, "GET", "bench."+testDomain, "/1k.bin")
	serveCtx(e.h, "GET", "nope."+testDomain, "/")
	a.Close()
	dec := json.NewDecoder(io.MultiReader(&out))
	var lines []struct {
		Site, Deploy, Path, Outcome string
		Status                      int
	}
	for dec.More() {
		var l struct {
			Site, Deploy, Path, Outcome string
			Status                      int
		}
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	if len(lines) != 2 || lines[0].Site != "bench" || lines[0].Deploy != "dep1" || lines[0].Status != 200 ||
		lines[1].Site != "" || lines[1].Status != 404 || lines[1].Outcome != "not_found" {
		t.Errorf("access lines = %+v", lines)
	}
}
