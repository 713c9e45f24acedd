package serve

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/raft"
)

func TestHostRouting(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name     string
		host     string
		target   string
		wantCode int
		wantBody string
	}{
		{"site", "blog.atoll.test", "/", 200, string(indexV2)},
		{"site with port", "blog.atoll.test:8080", "/", 200, string(indexV2)},
		{"site uppercase", "BLOG.Atoll.TEST", "/", 200, string(indexV2)},
		{"site fully qualified", "blog.atoll.test.", "/", 200, string(indexV2)},
		{"preview of superseded deploy", "d1--blog.atoll.test", "/", 200, "blog v1\n"},
		{"preview of published deploy", "d2--blog.atoll.test", "/", 200, string(indexV2)},
		{"preview of ready deploy", "d3--blog.atoll.test:443", "/", 200, "blog v3\n"},
		{"preview of uploading deploy", "d4--blog.atoll.test", "/", 404, "404 Not Found"},
		{"preview of failed deploy", "d5--blog.atoll.test", "/", 404, "404 Not Found"},
		{"preview of unknown deploy", "zz--blog.atoll.test", "/", 404, "404 Not Found"},
		{"preview of another site's deploy", "o1--blog.atoll.test", "/", 404, "404 Not Found"},
		{"preview label not a deploy id", "d-1--blog.atoll.test", "/", 404, "404 Not Found"},
		{"custom domain", "blog.example.com", "/", 200, string(indexV2)},
		{"second custom domain", "www.blog.example.com", "/", 200, string(indexV2)},
		{"custom domain with port", "Blog.Example.com:8443", "/", 200, string(indexV2)},
		{"other site by name", "other.atoll.test", "/", 200, "other site\n"},
		{"other site by domain", "other.example.net", "/", 200, "other site\n"},
		{"unknown site", "nope.atoll.test", "/", 404, "404 Not Found"},
		{"invalid site label", "-bad.atoll.test", "/", 404, "404 Not Found"},
		{"site with nothing published", "empty.atoll.test", "/", 404, "404 Not Found"},
		{"custom domain with nothing published", "empty.example.org", "/", 404, "404 Not Found"},
		{"unknown host", "example.org", "/", 404, "404 Not Found"},
		{"platform apex", "atoll.test", "/", 404, "404 Not Found"},
		{"two labels under the domain", "x.blog.atoll.test", "/", 404, "404 Not Found"},
		{"ip literal", "[::1]:8080", "/", 404, "404 Not Found"},
		{"ip address", "127.0.0.1", "/", 404, "404 Not Found"},
		{"absolute-form target wins over Host", "example.org", "http://blog.atoll.test/about", 200, "about v2\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := fx.do(t, request{host: tt.host, target: tt.target, header: []string{"Accept-Encoding: identity"}})
			if got, want := resp.status, tt.wantCode; got != want {
				t.Errorf("status: got %d, want %d", got, want)
			}
			if got, want := string(resp.body), tt.wantBody; got != want {
				t.Errorf("body: got %.60q, want %.60q", got, want)
			}
			if resp.status == 404 {
				if got, want := resp.get("Cache-Control"), "no-cache"; got != want {
					t.Errorf("Cache-Control: got %q, want %q", got, want)
				}
			}
		})
	}
	if got := fx.logs.records(t); len(got) != 0 {
		t.Errorf("normal requests logged %d records, want none: %v", len(got), got)
	}
}

func TestPaths(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name         string
		host         string
		target       string
		wantCode     int
		wantBody     string
		wantLocation string
		wantType     string
	}{
		{name: "root is the index", target: "/", wantCode: 200, wantBody: string(indexV2), wantType: "text/html; charset=utf-8"},
		{name: "index by name", target: "/index.html", wantCode: 200, wantBody: string(indexV2)},
		{name: "directory with slash", target: "/docs/", wantCode: 200, wantBody: "docs index v2\n"},
		{name: "directory without slash redirects", target: "/docs", wantCode: 301, wantLocation: "/docs/"},
		{name: "redirect keeps the query", target: "/docs?x=1&y=%20z", wantCode: 301, wantLocation: "/docs/?x=1&y=%20z"},
		{name: "file wins over directory index", target: "/files", wantCode: 200, wantBody: "a file named files\n"},
		{name: "directory index next to a file", target: "/files/", wantCode: 200, wantBody: "files dir index\n"},
		{name: "clean url", target: "/about", wantCode: 200, wantBody: "about v2\n", wantType: "text/html; charset=utf-8"},
		{name: "clean url in a folder", target: "/docs/guide", wantCode: 200, wantBody: "guide v2\n"},
		{name: "html by name", target: "/about.html", wantCode: 200, wantBody: "about v2\n"},
		{name: "clean url with slash is a directory", target: "/about/", wantCode: 404, wantBody: string(page404)},
		{name: "missing file gets custom 404", target: "/missing", wantCode: 404, wantBody: string(page404), wantType: "text/html; charset=utf-8"},
		{name: "missing folder gets custom 404", target: "/no/such/dir/", wantCode: 404, wantBody: string(page404)},
		{name: "missing without 404 page", host: "other.atoll.test", target: "/missing", wantCode: 404, wantBody: "404 Not Found", wantType: "text/plain; charset=utf-8"},
		{name: "percent-encoded path", target: "/a%20b/%C3%BC.txt", wantCode: 200, wantBody: "unicode path\n"},
		{name: "percent-encoded percent", target: "/100%25.txt", wantCode: 200, wantBody: "one hundred percent\n"},
		{name: "dot segments resolve", target: "/docs/../about", wantCode: 200, wantBody: "about v2\n"},
		{name: "dot segment", target: "/docs/./guide.html", wantCode: 200, wantBody: "guide v2\n"},
		{name: "double slashes collapse", target: "//docs//guide.html", wantCode: 200, wantBody: "guide v2\n"},
		{name: "dot dot cannot escape", target: "/../../../../etc/passwd", wantCode: 404, wantBody: string(page404)},
		{name: "encoded dot dot cannot escape", target: "/%2e%2e/%2e%2e/about.html", wantCode: 200, wantBody: "about v2\n"},
		{name: "encoded slash and dots", target: "/docs%2F..%2F..%2Fabout.html", wantCode: 200, wantBody: "about v2\n"},
		{name: "backslash is not a separator", target: "/docs%5Cguide.html", wantCode: 404, wantBody: string(page404)},
		{name: "nul byte", target: "/about%00.html", wantCode: 404, wantBody: string(page404)},
		{name: "query is not part of the path", target: "/about.html?v=3", wantCode: 200, wantBody: "about v2\n"},
		{name: "empty file", target: "/empty.txt", wantCode: 200, wantBody: ""},
		{name: "over-long path", target: "/" + strings.Repeat("a", 2000), wantCode: 404, wantBody: string(page404)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := fx.do(t, request{host: tt.host, target: tt.target, header: []string{"Accept-Encoding: identity"}})
			if got, want := resp.status, tt.wantCode; got != want {
				t.Errorf("status: got %d, want %d", got, want)
			}
			if got, want := string(resp.body), tt.wantBody; got != want {
				t.Errorf("body: got %.60q, want %.60q", got, want)
			}
			if tt.wantLocation != "" {
				if got, want := resp.get("Location"), tt.wantLocation; got != want {
					t.Errorf("Location: got %q, want %q", got, want)
				}
				if got, want := resp.get("Cache-Control"), DefaultCacheControl; got != want {
					t.Errorf("Cache-Control: got %q, want %q", got, want)
				}
			}
			if tt.wantType != "" {
				if got, want := resp.get("Content-Type"), tt.wantType; got != want {
					t.Errorf("Content-Type: got %q, want %q", got, want)
				}
			}
			if got, want := resp.get("X-Content-Type-Options"), "nosniff"; resp.status != 301 && got != want {
				t.Errorf("X-Content-Type-Options: got %q, want %q", got, want)
			}
		})
	}
}

func TestRedirectLocationIsEscaped(t *testing.T) {
	fx := newFixture(t)
	fx.cat.addDeploy(atoll.Deploy{ID: "d7", Site: "blog", State: atoll.StateReady, Created: t0},
		map[string]string{"/my docs/index.html": fx.hash["docs"]})
	resp := fx.do(t, request{host: "d7--blog.atoll.test", target: "/my%20docs"})
	if got, want := resp.status, 301; got != want {
		t.Fatalf("status: got %d, want %d", got, want)
	}
	if got, want := resp.get("Location"), "/my%20docs/"; got != want {
		t.Errorf("Location: got %q, want %q", got, want)
	}
}

func TestMethods(t *testing.T) {
	fx := newFixture(t)
	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
		t.Run(method, func(t *testing.T) {
			resp := fx.do(t, request{method: method, target: "/"})
			if got, want := resp.status, 405; got != want {
				t.Errorf("status: got %d, want %d", got, want)
			}
			if got, want := resp.get("Allow"), "GET, HEAD"; got != want {
				t.Errorf("Allow: got %q, want %q", got, want)
			}
			if got, want := string(resp.body), "405 Method Not Allowed"; got != want {
				t.Errorf("body: got %q, want %q", got, want)
			}
		})
	}
}

func TestHead(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name       string
		target     string
		header     []string
		wantCode   int
		wantLength int
		wantEnc    string
	}{
		{"identity", "/", []string{"Accept-Encoding: identity"}, 200, len(indexV2), ""},
		{"brotli", "/", []string{"Accept-Encoding: br"}, 200, len(compress(t, "br", indexV2)), "br"},
		{"range", "/big.bin", []string{"Range: bytes=100-199"}, 206, 100, ""},
		{"custom 404", "/missing", nil, 404, len(page404), ""},
		{"plain 404", "/missing", nil, 404, len("404 Not Found"), ""},
		{"empty file", "/empty.txt", nil, 200, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := ""
			if tt.name == "plain 404" {
				host = "other.atoll.test"
			}
			resp := fx.do(t, request{method: "HEAD", host: host, target: tt.target, header: tt.header})
			if got, want := resp.status, tt.wantCode; got != want {
				t.Errorf("status: got %d, want %d", got, want)
			}
			if got, want := resp.get("Content-Length"), strconv.Itoa(tt.wantLength); got != want {
				t.Errorf("Content-Length: got %q, want %q", got, want)
			}
			if got, want := resp.get("Content-Encoding"), tt.wantEnc; got != want {
				t.Errorf("Content-Encoding: got %q, want %q", got, want)
			}
			// fx.do already fails if any body byte followed the header.
		})
	}
}

func TestConditionalRequests(t *testing.T) {
	fx := newFixture(t)
	idx := fx.hash["index"]
	identity, brTag := etagOf(idx, ""), etagOf(idx, "br")
	lastMod := httpDate(d2.PublishedAt)
	tests := []struct {
		name     string
		header   []string
		wantCode int
	}{
		{"no condition", nil, 200},
		{"matching tag", []string{"If-None-Match: " + identity}, 304},
		{"weak form of the tag", []string{"If-None-Match: W/" + identity}, 304},
		{"tag in a list", []string{`If-None-Match: "x", ` + identity + `, "y"`}, 304},
		{"tag on a second field line", []string{`If-None-Match: "x"`, "If-None-Match: " + identity}, 304},
		{"star", []string{"If-None-Match: *"}, 304},
		{"other tag", []string{`If-None-Match: "abc"`}, 200},
		{"tag of another coding", []string{"If-None-Match: " + brTag}, 200},
		{"malformed list", []string{"If-None-Match: abc, " + identity}, 200},
		{"brotli tag with brotli", []string{"Accept-Encoding: br", "If-None-Match: " + brTag}, 304},
		{"identity tag with brotli", []string{"Accept-Encoding: br", "If-None-Match: " + identity}, 200},
		{"modified since later date", []string{"If-Modified-Since: " + httpDate(d2.PublishedAt.Add(time.Hour))}, 304},
		{"modified since same date", []string{"If-Modified-Since: " + lastMod}, 304},
		{"modified since earlier date", []string{"If-Modified-Since: " + httpDate(d2.PublishedAt.Add(-time.Second))}, 200},
		{"modified since bad date", []string{"If-Modified-Since: yesterday"}, 200},
		{"if-none-match wins over if-modified-since", []string{`If-None-Match: "abc"`, "If-Modified-Since: " + lastMod}, 200},
		{"if-match matching", []string{"If-Match: " + identity}, 200},
		{"if-match star", []string{"If-Match: *"}, 200},
		{"if-match weak never matches", []string{"If-Match: W/" + identity}, 412},
		{"if-match other", []string{`If-Match: "abc"`}, 412},
		{"unmodified since earlier date", []string{"If-Unmodified-Since: " + httpDate(d2.PublishedAt.Add(-time.Hour))}, 412},
		{"unmodified since later date", []string{"If-Unmodified-Since: " + httpDate(d2.PublishedAt.Add(time.Hour))}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := append([]string{"Accept-Encoding: identity"}, tt.header...)
			if strings.Contains(strings.Join(tt.header, ","), "Accept-Encoding") {
				header = tt.header
			}
			resp := fx.do(t, request{target: "/", header: header})
			if got, want := resp.status, tt.wantCode; got != want {
				t.Fatalf("status: got %d, want %d", got, want)
			}
			if resp.status == 412 {
				return
			}
			wantTag := identity
			if strings.Contains(strings.Join(header, ","), "Accept-Encoding: br") {
				wantTag = brTag
			}
			if got, want := resp.get("ETag"), wantTag; got != want {
				t.Errorf("ETag: got %q, want %q", got, want)
			}
			if got, want := resp.get("Last-Modified"), lastMod; got != want {
				t.Errorf("Last-Modified: got %q, want %q", got, want)
			}
			if got, want := resp.get("Cache-Control"), DefaultCacheControl; got != want {
				t.Errorf("Cache-Control: got %q, want %q", got, want)
			}
			if got, want := resp.get("Vary"), "Accept-Encoding"; got != want {
				t.Errorf("Vary: got %q, want %q", got, want)
			}
			if resp.status == 304 {
				if got := resp.get("Content-Encoding"); got != "" {
					t.Errorf("304 Content-Encoding: got %q, want none", got)
				}
				if len(resp.body) != 0 {
					t.Errorf("304 body: got %d bytes, want none", len(resp.body))
				}
			}
		})
	}
}

func TestLastModified(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name string
		host string
		want time.Time
	}{
		{"live deploy: when it went live", "blog.atoll.test", d2.PublishedAt},
		{"preview never published: when it was created", "d3--blog.atoll.test", d3.Created},
		{"superseded deploy: when it last went live", "d1--blog.atoll.test", d1.PublishedAt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := fx.do(t, request{host: tt.host})
			if got, want := resp.get("Last-Modified"), httpDate(tt.want); got != want {
				t.Errorf("Last-Modified: got %q, want %q", got, want)
			}
		})
	}

	t.Run("rollback moves the date forward", func(t *testing.T) {
		// A cache holding d2's index revalidates with If-Modified-Since
		// only; after a rollback to d1 it must get d1's bytes, not a 304.
		fx.cat.publish("d1", d2.PublishedAt.Add(time.Hour))
		defer fx.cat.publish("d2", d2.PublishedAt)
		resp := fx.do(t, request{header: []string{"If-Modified-Since: " + httpDate(d2.PublishedAt)}})
		if got, want := resp.status, 200; got != want {
			t.Fatalf("status: got %d, want %d", got, want)
		}
		if got, want := string(resp.body), "blog v1\n"; got != want {
			t.Errorf("body: got %q, want %q", got, want)
		}
	})
}

func TestRanges(t *testing.T) {
	fx := newFixture(t)
	size := len(bigBin)
	big := fx.hash["big"]
	lastMod := httpDate(d2.PublishedAt)
	tests := []struct {
		name      string
		target    string
		header    []string
		wantCode  int
		wantRange string // Content-Range
		wantBody  []byte
	}{
		{"first bytes", "/big.bin", []string{"Range: bytes=0-9"}, 206, fmt.Sprintf("bytes 0-9/%d", size), bigBin[:10]},
		{"middle bytes", "/big.bin", []string{"Range: bytes=10000-109999"}, 206, fmt.Sprintf("bytes 10000-109999/%d", size), bigBin[10000:110000]},
		{"open ended", "/big.bin", []string{"Range: bytes=150000-"}, 206, fmt.Sprintf("bytes 150000-%d/%d", size-1, size), bigBin[150000:]},
		{"suffix", "/big.bin", []string{"Range: bytes=-500"}, 206, fmt.Sprintf("bytes %d-%d/%d", size-500, size-1, size), bigBin[size-500:]},
		{"suffix longer than the file", "/notes.txt", []string{"Range: bytes=-100"}, 206, "bytes 0-4/5", tinyText},
		{"end past the file is clamped", "/notes.txt", []string{"Range: bytes=2-99999999999999999999999"}, 206, "bytes 2-4/5", tinyText[2:]},
		{"last byte", "/notes.txt", []string{"Range: bytes=4-4"}, 206, "bytes 4-4/5", tinyText[4:]},
		{"unit is case-insensitive", "/notes.txt", []string{"Range: Bytes=0-0"}, 206, "bytes 0-0/5", tinyText[:1]},
		{"start past the end", "/notes.txt", []string{"Range: bytes=5-"}, 416, "bytes */5", nil},
		{"zero suffix", "/notes.txt", []string{"Range: bytes=-0"}, 416, "bytes */5", nil},
		{"any range of an empty file", "/empty.txt", []string{"Range: bytes=0-"}, 416, "bytes */0", nil},
		{"several ranges send it all", "/notes.txt", []string{"Range: bytes=0-1,3-4"}, 200, "", tinyText},
		{"reversed range is ignored", "/notes.txt", []string{"Range: bytes=3-1"}, 200, "", tinyText},
		{"garbage is ignored", "/notes.txt", []string{"Range: bytes=abc"}, 200, "", tinyText},
		{"other unit is ignored", "/notes.txt", []string{"Range: items=0-1"}, 200, "", tinyText},
		{"if-range with the tag", "/big.bin", []string{"Range: bytes=0-9", "If-Range: " + etagOf(big, "")}, 206, fmt.Sprintf("bytes 0-9/%d", size), bigBin[:10]},
		{"if-range with an old tag", "/big.bin", []string{"Range: bytes=0-9", `If-Range: "old"`}, 200, "", bigBin},
		{"if-range with a weak tag", "/big.bin", []string{"Range: bytes=0-9", "If-Range: W/" + etagOf(big, "")}, 200, "", bigBin},
		{"if-range with the date", "/big.bin", []string{"Range: bytes=0-9", "If-Range: " + lastMod}, 206, fmt.Sprintf("bytes 0-9/%d", size), bigBin[:10]},
		{"if-range with an old date", "/big.bin", []string{"Range: bytes=0-9", "If-Range: " + httpDate(d1.Created)}, 200, "", bigBin},
		{"if-range old and unsatisfiable", "/notes.txt", []string{"Range: bytes=99-", `If-Range: "old"`}, 200, "", tinyText},
		{"not-modified wins over range", "/notes.txt", []string{"Range: bytes=0-1", "If-None-Match: " + etagOf(fx.hash["tiny"], "")}, 304, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := fx.do(t, request{target: tt.target, header: tt.header})
			if got, want := resp.status, tt.wantCode; got != want {
				t.Fatalf("status: got %d, want %d", got, want)
			}
			if got, want := resp.get("Content-Range"), tt.wantRange; got != want {
				t.Errorf("Content-Range: got %q, want %q", got, want)
			}
			if resp.status != 416 && !bytes.Equal(resp.body, tt.wantBody) {
				t.Errorf("body: got %d bytes %.20q, want %d bytes %.20q", len(resp.body), resp.body, len(tt.wantBody), tt.wantBody)
			}
			if resp.status == 206 || resp.status == 200 {
				if got, want := resp.get("Accept-Ranges"), "bytes"; got != want {
					t.Errorf("Accept-Ranges: got %q, want %q", got, want)
				}
				if got, want := resp.get("Content-Length"), strconv.Itoa(len(tt.wantBody)); got != want {
					t.Errorf("Content-Length: got %q, want %q", got, want)
				}
			}
		})
	}
}

func TestRangeOfCompressibleFile(t *testing.T) {
	fx := newFixture(t)
	idx := fx.hash["index"]
	tests := []struct {
		name     string
		header   []string
		wantCode int
		wantEnc  string
		wantTag  string
		wantBody []byte
	}{
		{"range is cut from identity bytes", []string{"Accept-Encoding: br, gzip", "Range: bytes=0-99"}, 206, "", etagOf(idx, ""), indexV2[:100]},
		{"failed if-range falls back to negotiation", []string{"Accept-Encoding: br", "Range: bytes=0-99", "If-Range: " + etagOf(idx, "br")}, 200, "br", etagOf(idx, "br"), indexV2},
		{"416 on a file with variants", []string{"Accept-Encoding: br", "Range: bytes=999999-"}, 416, "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := fx.do(t, request{target: "/", header: tt.header})
			if got, want := resp.status, tt.wantCode; got != want {
				t.Fatalf("status: got %d, want %d", got, want)
			}
			if got, want := resp.get("Content-Encoding"), tt.wantEnc; got != want {
				t.Errorf("Content-Encoding: got %q, want %q", got, want)
			}
			if got, want := resp.get("ETag"), tt.wantTag; got != want {
				t.Errorf("ETag: got %q, want %q", got, want)
			}
			if got, want := resp.get("Vary"), "Accept-Encoding"; got != want {
				t.Errorf("Vary: got %q, want %q", got, want)
			}
			if tt.wantBody != nil {
				if got := decompress(t, tt.wantEnc, resp.body); !bytes.Equal(got, tt.wantBody) {
					t.Errorf("body: got %d bytes, want %d", len(got), len(tt.wantBody))
				}
			}
		})
	}
}

// TestKeepAlive sends several answers down one connection: whole files and
// ranges, both going out with sendfile, must be framed exactly.
func TestKeepAlive(t *testing.T) {
	fx := newFixture(t)
	conn, err := net.Dial("tcp", fx.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	reqs := []struct {
		r        request
		wantCode int
		wantBody []byte
	}{
		{request{target: "/big.bin", header: []string{"Range: bytes=1000-150999"}}, 206, bigBin[1000:151000]},
		{request{target: "/big.bin"}, 200, bigBin},
		{request{target: "/big.bin", header: []string{"Range: bytes=-70000"}}, 206, bigBin[len(bigBin)-70000:]},
		{request{method: "HEAD", target: "/big.bin"}, 200, nil},
		{request{target: "/notes.txt", header: []string{"Range: bytes=1-2"}}, 206, tinyText[1:3]},
		{request{target: "/about"}, 200, []byte("about v2\n")},
	}
	// Pipeline them all, then read the answers in order.
	var all strings.Builder
	for _, r := range reqs {
		all.WriteString(r.r.raw(false))
	}
	if _, err := io.WriteString(conn, all.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for i, r := range reqs {
		resp := readResponse(t, br, r.r.method)
		if got, want := resp.status, r.wantCode; got != want {
			t.Fatalf("request %d: status: got %d, want %d", i, got, want)
		}
		if !bytes.Equal(resp.body, r.wantBody) {
			t.Fatalf("request %d: body: got %d bytes, want %d", i, len(resp.body), len(r.wantBody))
		}
	}
}

func TestContentTypes(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		target string
		want   string
	}{
		{"/", "text/html; charset=utf-8"},
		{"/about", "text/html; charset=utf-8"},
		{"/style.css", "text/css; charset=utf-8"},
		{"/app.js", "text/javascript; charset=utf-8"},
		{"/mod.mjs", "text/javascript; charset=utf-8"},
		{"/data.json", "application/json"},
		{"/logo.svg", "image/svg+xml"},
		{"/img/photo.png", "image/png"},
		{"/UPPER.PNG", "image/png"},
		{"/pic.jpg", "image/jpeg"},
		{"/pic.jpeg", "image/jpeg"},
		{"/pic.gif", "image/gif"},
		{"/pic.webp", "image/webp"},
		{"/pic.avif", "image/avif"},
		{"/favicon.ico", "image/x-icon"},
		{"/font.woff", "font/woff"},
		{"/font.woff2", "font/woff2"},
		{"/font.ttf", "font/ttf"},
		{"/notes.txt", "text/plain; charset=utf-8"},
		{"/feed.xml", "application/xml; charset=utf-8"},
		{"/app.wasm", "application/wasm"},
		{"/doc.pdf", "application/pdf"},
		{"/video.mp4", "video/mp4"},
		{"/clip.webm", "video/webm"},
		{"/app.js.map", "application/json"},
		{"/site.webmanifest", "application/manifest+json"},
		{"/README", "application/octet-stream"},
		{"/weird.xyz", "application/octet-stream"},
		{"/missing", "text/html; charset=utf-8"}, // the custom 404 page
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			resp := fx.do(t, request{method: "HEAD", target: tt.target})
			if got, want := resp.get("Content-Type"), tt.want; got != want {
				t.Errorf("Content-Type: got %q, want %q", got, want)
			}
			if got, want := resp.get("X-Content-Type-Options"), "nosniff"; got != want {
				t.Errorf("X-Content-Type-Options: got %q, want %q", got, want)
			}
		})
	}
}

func TestEncodingNegotiation(t *testing.T) {
	fx := newFixture(t)
	idx := fx.hash["index"]
	tests := []struct {
		name     string
		target   string
		accept   []string // Accept-Encoding field lines
		wantEnc  string
		wantVary string
	}{
		{"no header", "/", nil, "", "Accept-Encoding"},
		{"empty header", "/", []string{""}, "", "Accept-Encoding"},
		{"gzip", "/", []string{"gzip"}, "gzip", "Accept-Encoding"},
		{"x-gzip", "/", []string{"x-gzip"}, "gzip", "Accept-Encoding"},
		{"brotli", "/", []string{"br"}, "br", "Accept-Encoding"},
		{"zstd", "/", []string{"zstd"}, "zstd", "Accept-Encoding"},
		{"browser list prefers br", "/", []string{"gzip, deflate, br, zstd"}, "br", "Accept-Encoding"},
		{"zstd over gzip", "/", []string{"gzip, zstd"}, "zstd", "Accept-Encoding"},
		{"names are case-insensitive", "/", []string{"GZIP, BR"}, "br", "Accept-Encoding"},
		{"q-values decide", "/", []string{"br;q=0.5, gzip;q=0.8, zstd;q=0.1"}, "gzip", "Accept-Encoding"},
		{"q with spaces", "/", []string{"br ; q=0.2 , gzip ; q=0.3"}, "gzip", "Accept-Encoding"},
		{"q=0 excludes", "/", []string{"br;q=0, zstd;q=0, gzip"}, "gzip", "Accept-Encoding"},
		{"all excluded", "/", []string{"br;q=0, zstd;q=0, gzip;q=0"}, "", "Accept-Encoding"},
		{"star", "/", []string{"*"}, "br", "Accept-Encoding"},
		{"star with exclusion", "/", []string{"*, br;q=0"}, "zstd", "Accept-Encoding"},
		{"star excluded", "/", []string{"*;q=0"}, "", "Accept-Encoding"},
		{"identity preferred", "/", []string{"identity;q=1, br;q=0.5"}, "", "Accept-Encoding"},
		{"identity tie goes to compression", "/", []string{"identity, gzip"}, "gzip", "Accept-Encoding"},
		{"identity excluded but nothing else", "/", []string{"identity;q=0"}, "", "Accept-Encoding"},
		{"malformed q ignores the element", "/", []string{"br;q=2, gzip"}, "gzip", "Accept-Encoding"},
		{"unknown codings", "/", []string{"deflate, compress"}, "", "Accept-Encoding"},
		{"two field lines", "/", []string{"gzip;q=0.5", "br"}, "br", "Accept-Encoding"},
		{"only the stored variants", "/404.html", []string{"br, gzip;q=0.5"}, "gzip", "Accept-Encoding"},
		{"blob without variants", "/img/photo.png", []string{"br, gzip"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var header []string
			for _, a := range tt.accept {
				header = append(header, "Accept-Encoding: "+a)
			}
			resp := fx.do(t, request{target: tt.target, header: header})
			if got, want := resp.status, 200; got != want {
				t.Fatalf("status: got %d, want %d", got, want)
			}
			if got, want := resp.get("Content-Encoding"), tt.wantEnc; got != want {
				t.Errorf("Content-Encoding: got %q, want %q", got, want)
			}
			if got, want := resp.get("Vary"), tt.wantVary; got != want {
				t.Errorf("Vary: got %q, want %q", got, want)
			}
			if tt.target == "/" {
				if got, want := resp.get("ETag"), etagOf(idx, tt.wantEnc); got != want {
					t.Errorf("ETag: got %q, want %q", got, want)
				}
				if got := decompress(t, tt.wantEnc, resp.body); !bytes.Equal(got, indexV2) {
					t.Errorf("decoded body: got %d bytes, want %d", len(got), len(indexV2))
				}
			}
			if got, want := resp.get("Content-Length"), strconv.Itoa(len(resp.body)); got != want {
				t.Errorf("Content-Length: got %q, want %q", got, want)
			}
		})
	}
}

func TestNotFoundPage(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name     string
		header   []string
		wantEnc  string
		wantVary string
	}{
		{"identity", nil, "", "Accept-Encoding"},
		{"gzip variant", []string{"Accept-Encoding: gzip"}, "gzip", "Accept-Encoding"},
		{"conditions do not apply", []string{"If-None-Match: *", "Range: bytes=0-1"}, "", "Accept-Encoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := fx.do(t, request{target: "/nope", header: tt.header})
			if got, want := resp.status, 404; got != want {
				t.Fatalf("status: got %d, want %d", got, want)
			}
			if got, want := resp.get("Content-Encoding"), tt.wantEnc; got != want {
				t.Errorf("Content-Encoding: got %q, want %q", got, want)
			}
			if got, want := resp.get("Vary"), tt.wantVary; got != want {
				t.Errorf("Vary: got %q, want %q", got, want)
			}
			if got, want := resp.get("Cache-Control"), "no-cache"; got != want {
				t.Errorf("Cache-Control: got %q, want %q", got, want)
			}
			if got := resp.get("ETag"); got != "" {
				t.Errorf("ETag: got %q, want none on a 404", got)
			}
			if got := decompress(t, tt.wantEnc, resp.body); !bytes.Equal(got, page404) {
				t.Errorf("body: got %.40q, want the 404 page", got)
			}
		})
	}
}

// TestAtomicPublish switches the site's live deploy while a request is
// being answered: the request keeps reading the deploy it started with, and
// the next request sees the new one.
func TestAtomicPublish(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name        string
		target      string
		wantCode    int
		wantBody    string // from d2, the deploy live when the request arrived
		wantNext    int
		wantNextBod string // from d6, published mid-request
	}{
		// d2 has /about.html, d6 has no about at all: three lookups, all in d2.
		{"clean url", "/about", 200, "about v2\n", 404, "custom 404 v6\n"},
		// Missing in both: the 404 page must come from d2, not d6.
		{"404 page", "/nope", 404, string(page404), 404, "custom 404 v6\n"},
		{"index", "/", 200, string(indexV2), 200, "blog v6\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx.cat.publish("d2", d2.PublishedAt)
			fx.cat.takeLookups()
			fired := false
			fx.cat.mu.Lock()
			fx.cat.afterSite = func(string) {
				if !fired {
					fired = true
					fx.cat.publish("d6", d6.Created.Add(time.Minute))
				}
			}
			fx.cat.mu.Unlock()
			defer func() {
				fx.cat.mu.Lock()
				fx.cat.afterSite = nil
				fx.cat.mu.Unlock()
			}()

			resp := fx.do(t, request{target: tt.target, header: []string{"Accept-Encoding: identity"}})
			if got, want := resp.status, tt.wantCode; got != want {
				t.Errorf("status: got %d, want %d", got, want)
			}
			if got, want := string(resp.body), tt.wantBody; got != want {
				t.Errorf("body: got %.40q, want %.40q", got, want)
			}
			lookups := fx.cat.takeLookups()
			if len(lookups) == 0 {
				t.Fatal("no manifest lookups recorded")
			}
			for _, l := range lookups {
				if !strings.HasPrefix(l, "d2 ") {
					t.Errorf("lookup %q: got another deploy, want every lookup in d2 (all: %q)", l, lookups)
				}
			}

			next := fx.do(t, request{target: tt.target, header: []string{"Accept-Encoding: identity"}})
			if got, want := next.status, tt.wantNext; got != want {
				t.Errorf("next status: got %d, want %d", got, want)
			}
			if got, want := string(next.body), tt.wantNextBod; got != want {
				t.Errorf("next body: got %.40q, want %.40q", got, want)
			}
		})
	}
}

func TestBackendErrors(t *testing.T) {
	boom := errors.New("disk on fire")
	tests := []struct {
		name     string
		target   string
		header   []string
		setup    func(fx *fixture)
		wantCode int
		wantBody string
		wantLog  bool
	}{
		{
			name: "catalog site read fails", target: "/",
			setup:    func(fx *fixture) { fx.cat.siteErr = boom },
			wantCode: 500, wantBody: "500 Internal Server Error", wantLog: true,
		},
		{
			name: "catalog closed", target: "/",
			setup:    func(fx *fixture) { fx.cat.siteErr = fmt.Errorf("read site: %w", raft.ErrClosed) },
			wantCode: 503, wantBody: "503 Service Unavailable", wantLog: true,
		},
		{
			name: "deploy read fails", target: "/",
			setup:    func(fx *fixture) { fx.cat.deployErr = boom },
			wantCode: 500, wantBody: "500 Internal Server Error", wantLog: true,
		},
		{
			name: "manifest read fails", target: "/about",
			setup:    func(fx *fixture) { fx.cat.fileErr = boom },
			wantCode: 500, wantBody: "500 Internal Server Error", wantLog: true,
		},
		{
			name: "stat fails", target: "/about.html",
			setup:    func(fx *fixture) { fx.blobs.statErr[fx.hash["about"]] = boom },
			wantCode: 503, wantBody: "503 Service Unavailable", wantLog: true,
		},
		{
			name: "referenced blob is missing", target: "/about.html",
			setup:    func(fx *fixture) { fx.blobs.statErr[fx.hash["about"]] = blobstore.ErrNotFound },
			wantCode: 503, wantBody: "503 Service Unavailable", wantLog: true,
		},
		{
			name: "open fails", target: "/about.html",
			setup:    func(fx *fixture) { fx.blobs.openErr[fx.hash["about"]+"/"] = boom },
			wantCode: 503, wantBody: "503 Service Unavailable", wantLog: true,
		},
		{
			name: "open fails for a range", target: "/big.bin", header: []string{"Range: bytes=0-1"},
			setup:    func(fx *fixture) { fx.blobs.openErr[fx.hash["big"]+"/"] = boom },
			wantCode: 503, wantBody: "503 Service Unavailable", wantLog: true,
		},
		{
			name: "head needs no open", target: "/about.html",
			setup:    func(fx *fixture) { fx.blobs.openErr[fx.hash["about"]+"/"] = boom },
			wantCode: 200, wantBody: "",
		},
		{
			name: "vanished variant falls back to identity", target: "/about.html", header: []string{"Accept-Encoding: br"},
			setup: func(fx *fixture) {
				fx.blobs.ghosts[fx.hash["about"]] = []blobstore.Variant{{Encoding: "br", Size: 3}}
			},
			wantCode: 200, wantBody: "about v2\n",
		},
		{
			name: "broken 404 page degrades to plain 404", target: "/nope",
			setup:    func(fx *fixture) { fx.blobs.statErr[fx.hash["404"]] = boom },
			wantCode: 404, wantBody: "404 Not Found", wantLog: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t)
			tt.setup(fx)
			method := "GET"
			if strings.HasPrefix(tt.name, "head") {
				method = "HEAD"
			}
			resp := fx.do(t, request{method: method, target: tt.target, header: tt.header})
			if got, want := resp.status, tt.wantCode; got != want {
				t.Errorf("status: got %d, want %d", got, want)
			}
			if got, want := string(resp.body), tt.wantBody; got != want {
				t.Errorf("body: got %q, want %q", got, want)
			}
			if resp.status >= 500 {
				if got, want := resp.get("Cache-Control"), "no-store"; got != want {
					t.Errorf("Cache-Control: got %q, want %q", got, want)
				}
			}
			if tt.name == "vanished variant falls back to identity" {
				if got, want := resp.get("Content-Encoding"), ""; got != want {
					t.Errorf("Content-Encoding: got %q, want %q", got, want)
				}
				if got, want := resp.get("ETag"), etagOf(fx.hash["about"], ""); got != want {
					t.Errorf("ETag: got %q, want %q", got, want)
				}
			}
			recs := fx.logs.records(t)
			if !tt.wantLog {
				if len(recs) != 0 {
					t.Errorf("logged %v, want nothing", recs)
				}
				return
			}
			if got, want := len(recs), 1; got != want {
				t.Fatalf("log records: got %d, want %d: %v", got, want, recs)
			}
			rec := recs[0]
			if got, want := rec["level"], "ERROR"; got != want {
				t.Errorf("log level: got %v, want %v", got, want)
			}
			if got, want := rec["component"], "serve"; got != want {
				t.Errorf("log component: got %v, want %v", got, want)
			}
			if got, _ := rec["err"].(string); !strings.Contains(got, "disk on fire") && !strings.Contains(got, "not found") && !strings.Contains(got, "closed") {
				t.Errorf("log err: got %q, want the cause", got)
			}
		})
	}
}

func TestCacheControlConfig(t *testing.T) {
	fx := newFixtureConfig(t, Config{Domain: testDomain, CacheControl: "public, max-age=31536000, immutable"})
	tests := []struct {
		name   string
		target string
		header []string
		want   string
	}{
		{"file", "/about.html", nil, "public, max-age=31536000, immutable"},
		{"not modified", "/about.html", []string{"If-None-Match: *"}, "public, max-age=31536000, immutable"},
		{"redirect", "/docs", nil, "public, max-age=31536000, immutable"},
		{"404 never inherits it", "/nope", nil, "no-cache"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := fx.do(t, request{target: tt.target, header: tt.header})
			if got, want := resp.get("Cache-Control"), tt.want; got != want {
				t.Errorf("Cache-Control: got %q, want %q", got, want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	cat, blobs := newFakeCatalog(), newFakeBlobs(t)
	tests := []struct {
		name       string
		cfg        Config
		cat        Catalog
		blobs      Blobs
		wantErr    bool
		wantDomain string
	}{
		{name: "default", cfg: DefaultConfig(), cat: cat, blobs: blobs, wantDomain: "localhost"},
		{name: "domain is lowercased", cfg: Config{Domain: "Atoll.Example."}, cat: cat, blobs: blobs, wantDomain: "atoll.example"},
		{name: "no catalog", cfg: DefaultConfig(), blobs: blobs, wantErr: true},
		{name: "no blobs", cfg: DefaultConfig(), cat: cat, wantErr: true},
		{name: "empty domain", cfg: Config{}, cat: cat, blobs: blobs, wantErr: true},
		{name: "domain with port", cfg: Config{Domain: "localhost:8080"}, cat: cat, blobs: blobs, wantErr: true},
		{name: "domain with space", cfg: Config{Domain: "a b"}, cat: cat, blobs: blobs, wantErr: true},
		{name: "cache control with newline", cfg: Config{Domain: "x.test", CacheControl: "max-age=0\r\nX-Evil: 1"}, cat: cat, blobs: blobs, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(tt.cfg, tt.cat, tt.blobs)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("err: got %v, want ErrInvalidConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err: got %v, want nil", err)
			}
			if got, want := h.domain, tt.wantDomain; got != want {
				t.Errorf("domain: got %q, want %q", got, want)
			}
			if got, want := h.cacheControl, DefaultCacheControl; got != want {
				t.Errorf("cache control: got %q, want %q", got, want)
			}
		})
	}
}

// TestConcurrentPublish flips the live deploy while clients read: every
// answer must come whole from one deploy, its body matching its ETag.
func TestConcurrentPublish(t *testing.T) {
	fx := newFixture(t)
	want := map[string]string{ // body -> ETag (empty: 404 page, no ETag)
		string(indexV2):   etagOf(fx.hash["index"], ""),
		"blog v6\n":       etagOf(fx.hash["indexV6"], ""),
		string(page404):   "",
		"custom 404 v6\n": "",
	}
	const workers = 8
	done := make(chan struct{})
	errs := make(chan error, workers) // one value per worker
	for w := range workers {
		go func() {
			target := "/"
			if w%2 == 1 {
				target = "/nope"
			}
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				resp, err := fx.tryDo(request{target: target, header: []string{"Accept-Encoding: identity"}})
				if err != nil {
					errs <- err
					return
				}
				if tag, ok := want[string(resp.body)]; !ok || resp.get("ETag") != tag {
					errs <- fmt.Errorf("GET %s: body %.30q with ETag %q: not one deploy's answer", target, resp.body, resp.get("ETag"))
					return
				}
			}
		}()
	}
	for i := range 100 {
		id := "d2"
		if i%2 == 0 {
			id = "d6"
		}
		fx.cat.publish(id, t0.Add(time.Duration(100+i)*time.Hour))
		time.Sleep(time.Millisecond)
	}
	close(done)
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
