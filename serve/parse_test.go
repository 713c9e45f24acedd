package serve

import (
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/blobstore"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		name      string
		header    string
		size      int64
		wantKind  rangeKind
		wantStart int64
		wantLen   int64
	}{
		{"closed", "bytes=0-9", 100, rangeSingle, 0, 10},
		{"open", "bytes=90-", 100, rangeSingle, 90, 10},
		{"suffix", "bytes=-10", 100, rangeSingle, 90, 10},
		{"suffix too long", "bytes=-1000", 100, rangeSingle, 0, 100},
		{"end clamped", "bytes=50-1000", 100, rangeSingle, 50, 50},
		{"huge end saturates", "bytes=1-99999999999999999999999999", 100, rangeSingle, 1, 99},
		{"whitespace", "  bytes= 5 - 6 ", 100, rangeSingle, 5, 2},
		{"empty list elements", "bytes=, 5-6 ,", 100, rangeSingle, 5, 2},
		{"uppercase unit", "BYTES=0-0", 100, rangeSingle, 0, 1},
		{"start at end", "bytes=100-", 100, rangeUnsatisfiable, 0, 0},
		{"huge start", "bytes=99999999999999999999999-", 100, rangeUnsatisfiable, 0, 0},
		{"zero suffix", "bytes=-0", 100, rangeUnsatisfiable, 0, 0},
		{"empty content", "bytes=0-", 0, rangeUnsatisfiable, 0, 0},
		{"empty content suffix", "bytes=-5", 0, rangeUnsatisfiable, 0, 0},
		{"several", "bytes=0-1,5-6", 100, rangeNone, 0, 0},
		{"several unsatisfiable", "bytes=200-300,400-", 100, rangeNone, 0, 0},
		{"reversed", "bytes=5-1", 100, rangeNone, 0, 0},
		{"no dash", "bytes=5", 100, rangeNone, 0, 0},
		{"two dashes", "bytes=1-2-3", 100, rangeNone, 0, 0},
		{"negative start", "bytes=--5", 100, rangeNone, 0, 0},
		{"plus sign", "bytes=+1-2", 100, rangeNone, 0, 0},
		{"letters", "bytes=a-b", 100, rangeNone, 0, 0},
		{"empty spec", "bytes=", 100, rangeNone, 0, 0},
		{"just a dash", "bytes=-", 100, rangeNone, 0, 0},
		{"other unit", "items=0-1", 100, rangeNone, 0, 0},
		{"no unit", "0-1", 100, rangeNone, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, kind := parseRange([]byte(tt.header), tt.size)
			if got, want := kind, tt.wantKind; got != want {
				t.Fatalf("kind: got %d, want %d", got, want)
			}
			if got, want := r.start, tt.wantStart; got != want {
				t.Errorf("start: got %d, want %d", got, want)
			}
			if got, want := r.length, tt.wantLen; got != want {
				t.Errorf("length: got %d, want %d", got, want)
			}
		})
	}
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{
		"bytes=0-9", "bytes=-5", "bytes=5-", "bytes=0-0,1-1", "bytes=-0", "bytes=9-1",
		"bytes=99999999999999999999-", "bytes=0-99999999999999999999", "bytes=", "BYTES= 1 - 2 ",
		"items=0-1", "bytes=,,,", "bytes=-9223372036854775807", "bytes=9223372036854775807-",
	} {
		f.Add(s, int64(100))
		f.Add(s, int64(0))
	}
	f.Add("bytes=0-", int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		r, kind := parseRange([]byte(header), size)
		switch kind {
		case rangeSingle:
			if r.start < 0 || r.length <= 0 || r.start >= size || r.length > size-r.start {
				t.Fatalf("parseRange(%q, %d) = %+v: out of bounds", header, size, r)
			}
		case rangeNone, rangeUnsatisfiable:
			if r != (byteRange{}) {
				t.Fatalf("parseRange(%q, %d) = %+v with kind %d: want a zero range", header, size, r, kind)
			}
		default:
			t.Fatalf("parseRange(%q, %d): unknown kind %d", header, size, kind)
		}
	})
}

// testInfo is a blob with every variant stored.
var testInfo = blobstore.Info{Hash: "h", Size: 1000, Variants: []blobstore.Variant{
	{Encoding: "br", Size: 100}, {Encoding: "zstd", Size: 110}, {Encoding: "gzip", Size: 120},
}}

func TestChooseEncoding(t *testing.T) {
	gzipOnly := blobstore.Info{Hash: "h", Size: 1000, Variants: []blobstore.Variant{{Encoding: "gzip", Size: 120}}}
	tests := []struct {
		name     string
		header   []string
		info     blobstore.Info
		wantEnc  string
		wantSize int64
	}{
		{"absent", nil, testInfo, "", 1000},
		{"all equal", []string{"gzip, zstd, br"}, testInfo, "br", 100},
		{"highest q", []string{"br;q=0.1, zstd;q=0.9, gzip;q=0.5"}, testInfo, "zstd", 110},
		{"three decimals", []string{"br;q=0.001, gzip;q=0.002"}, testInfo, "gzip", 120},
		{"q=1.000", []string{"gzip;q=1.000, br;q=0.999"}, testInfo, "gzip", 120},
		{"q=0 excludes", []string{"br;q=0, zstd;q=0.0, gzip;q=0.000"}, testInfo, "", 1000},
		{"uppercase Q", []string{"br;Q=0, gzip"}, testInfo, "gzip", 120},
		{"other params ignored", []string{"br;level=5;q=0.5, gzip;q=0.4"}, testInfo, "br", 100},
		{"q over 1 drops the element", []string{"br;q=1.5, gzip;q=0.1"}, testInfo, "gzip", 120},
		{"too many decimals drops the element", []string{"br;q=0.0001, gzip;q=0.1"}, testInfo, "gzip", 120},
		{"duplicate takes the best", []string{"br;q=0, br;q=0.7, gzip;q=0.5"}, testInfo, "br", 100},
		{"star", []string{"*;q=0.5"}, testInfo, "br", 100},
		{"star excluded but one named", []string{"*;q=0, gzip"}, testInfo, "gzip", 120},
		{"identity wins only when preferred", []string{"identity;q=0.6, br;q=0.5"}, testInfo, "", 1000},
		{"unlisted identity is the fallback", []string{"gzip;q=0.1"}, testInfo, "gzip", 120},
		{"identity tie", []string{"identity;q=0.5, br;q=0.5"}, testInfo, "br", 100},
		{"star sets identity", []string{"*;q=0.2, gzip;q=0.1"}, testInfo, "br", 100},
		{"unavailable coding", []string{"br"}, gzipOnly, "", 1000},
		{"no variants", []string{"br, gzip"}, blobstore.Info{Hash: "h", Size: 7}, "", 7},
		{"unknown variant name ignored", []string{"*"}, blobstore.Info{Hash: "h", Size: 7, Variants: []blobstore.Variant{{Encoding: "lz4", Size: 1}}}, "", 7},
		{"garbage", []string{";;;,,=,q=,;q"}, testInfo, "", 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var values [][]byte
			for _, h := range tt.header {
				values = append(values, []byte(h))
			}
			enc, size := parseAcceptEncoding(values).choose(tt.info)
			if got, want := enc, tt.wantEnc; got != want {
				t.Errorf("coding: got %q, want %q", got, want)
			}
			if got, want := size, tt.wantSize; got != want {
				t.Errorf("size: got %d, want %d", got, want)
			}
		})
	}
}

func FuzzAcceptEncoding(f *testing.F) {
	for _, s := range []string{
		"gzip, deflate, br, zstd", "br;q=0", "*;q=0, identity;q=0", "gzip;q=0.5;q=2",
		"br;q=1.", "x-gzip", "identity;q=1, *;q=0", ";q=0.5", "br ; q = 0.3", ",,,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		ae := parseAcceptEncoding([][]byte{[]byte(header)})
		for _, q := range append(ae.coding[:], ae.identity, ae.star) {
			if q != qUnset && (q < 0 || q > 1000) {
				t.Fatalf("parseAcceptEncoding(%q) = %+v: q out of range", header, ae)
			}
		}
		enc, size := ae.choose(testInfo)
		if enc == "" {
			if size != testInfo.Size {
				t.Fatalf("choose(%q) = identity with size %d, want %d", header, size, testInfo.Size)
			}
			return
		}
		for _, v := range testInfo.Variants {
			if v.Encoding == enc {
				if size != v.Size {
					t.Fatalf("choose(%q) = %s with size %d, want %d", header, enc, size, v.Size)
				}
				return
			}
		}
		t.Fatalf("choose(%q) = %q: not a stored variant", header, enc)
	})
}

func TestHostName(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"blog.atoll.test", "blog.atoll.test", true},
		{"Blog.Atoll.Test", "blog.atoll.test", true},
		{"blog.atoll.test:8080", "blog.atoll.test", true},
		{"blog.atoll.test.", "blog.atoll.test", true},
		{"blog.atoll.test.:80", "blog.atoll.test", true},
		{"localhost", "localhost", true},
		{"under_score.example", "under_score.example", true},
		{"127.0.0.1:80", "127.0.0.1", true},
		{"", "", false},
		{":80", "", false},
		{"a..b", "", false},
		{".a", "", false},
		{"..", "", false},
		{".", "", false},
		{"[::1]:80", "", false},
		{"[::1]", "", false},
		{"a:b", "", false},
		{"a:80:80", "", false},
		{"exa mple.com", "", false},
		{"exämple.com", "", false},
		{"a/b", "", false},
		{strings.Repeat("a", 254), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := hostName([]byte(tt.in))
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("hostName(%q): got %q, %v, want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestRoute(t *testing.T) {
	tests := []struct {
		host                 string
		wantKind             hostKind
		wantSite, wantDeploy string
	}{
		{"blog.atoll.test", hostSite, "blog", ""},
		{"abc123--blog.atoll.test", hostPreview, "blog", "abc123"},
		{"my-blog.atoll.test", hostSite, "my-blog", ""},
		{"abc--my-blog.atoll.test", hostPreview, "my-blog", "abc"},
		{"abc--my--blog.atoll.test", hostInvalid, "", ""},
		{"--blog.atoll.test", hostInvalid, "", ""},
		{"abc--.atoll.test", hostInvalid, "", ""},
		{"blog-.atoll.test", hostInvalid, "", ""},
		{"a_b.atoll.test", hostInvalid, "", ""},
		{"atoll.test", hostCustom, "", ""},
		{"x.blog.atoll.test", hostCustom, "", ""},
		{"blogatoll.test", hostCustom, "", ""},
		{"www.example.com", hostCustom, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			kind, site, deploy := route(tt.host, "atoll.test")
			if kind != tt.wantKind || site != tt.wantSite || deploy != tt.wantDeploy {
				t.Errorf("route(%q): got %d %q %q, want %d %q %q", tt.host, kind, site, deploy, tt.wantKind, tt.wantSite, tt.wantDeploy)
			}
		})
	}
}

func FuzzHostName(f *testing.F) {
	for _, s := range []string{
		"blog.atoll.test", "BLOG.ATOLL.TEST:8080", "abc--blog.atoll.test.", "[::1]:80",
		"a:b:c", ":", ".", "..", "x--.atoll.test", "xn--bcher-kva.example", "a.b.c.atoll.test:0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		host, ok := hostName([]byte(in))
		if !ok {
			if host != "" {
				t.Fatalf("hostName(%q) = %q, false: want an empty name", in, host)
			}
			return
		}
		if host == "" || len(host) > maxHostLen || len(host) > len(in) {
			t.Fatalf("hostName(%q) = %q: bad length", in, host)
		}
		if host != strings.ToLower(host) || strings.ContainsAny(host, ":[] /") || strings.HasSuffix(host, ".") {
			t.Fatalf("hostName(%q) = %q: not a bare lowercase name", in, host)
		}
		kind, site, deploy := route(host, "atoll.test")
		switch kind {
		case hostSite:
			if deploy != "" || !strings.HasPrefix(host, site+".") {
				t.Fatalf("route(%q) = site %q deploy %q", host, site, deploy)
			}
		case hostPreview:
			if !strings.HasPrefix(host, deploy+"--"+site+".") {
				t.Fatalf("route(%q) = preview %q of %q", host, deploy, site)
			}
		case hostCustom, hostInvalid:
			if site != "" || deploy != "" {
				t.Fatalf("route(%q) = kind %d with site %q deploy %q", host, kind, site, deploy)
			}
		}
	})
}

func TestRequestPath(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"/", "/", true},
		{"/a/b", "/a/b", true},
		{"/a/b/", "/a/b/", true},
		{"/a/../b", "/b", true},
		{"/../../x", "/x", true},
		{"/a/./b/", "/a/b/", true},
		{"//a//b", "/a/b", true},
		{"/a/..", "/", true},
		{"", "", false},
		{"a/b", "", false},
		{"/" + strings.Repeat("x", 1024), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := requestPath([]byte(tt.in))
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("requestPath(%q): got %q, %v, want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzRequestPath(f *testing.F) {
	for _, s := range []string{"/", "/a/../../b", "//x/./y/", "/a/..", "/%2e%2e/", "/a\\..\\b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, ok := requestPath([]byte(in))
		if !ok {
			return
		}
		if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") {
			t.Fatalf("requestPath(%q) = %q: not rooted and clean", in, p)
		}
		for seg := range strings.SplitSeq(strings.Trim(p, "/"), "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("requestPath(%q) = %q: dot segment left", in, p)
			}
		}
	})
}

func TestETagListMatches(t *testing.T) {
	const tag = `"abc"`
	tests := []struct {
		name   string
		header string
		weak   bool
		want   bool
	}{
		{"exact", `"abc"`, true, true},
		{"weak form, weak compare", `W/"abc"`, true, true},
		{"weak form, strong compare", `W/"abc"`, false, false},
		{"in a list", `"x", "abc"`, false, true},
		{"no spaces", `"x","abc"`, true, true},
		{"star", `*`, false, true},
		{"other", `"abcd"`, true, false},
		{"unquoted", `abc`, true, false},
		{"unterminated", `"abc`, true, false},
		{"stops at garbage", `"x", junk, "abc"`, true, false},
		{"empty", ``, true, false},
		{"comma in tag", `"a,b", "abc"`, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := etagListMatches([][]byte{[]byte(tt.header)}, tag, tt.weak), tt.want; got != want {
				t.Errorf("etagListMatches(%q, weak=%v): got %v, want %v", tt.header, tt.weak, got, want)
			}
		})
	}
	// A weak current tag (an answer compressed per request) matches
	// weakly only, in either form.
	for _, tt := range []struct {
		header string
		weak   bool
		want   bool
	}{
		{`"abc"`, true, true},
		{`W/"abc"`, true, true},
		{`"abc"`, false, false},
		{`W/"abc"`, false, false},
		{`*`, false, true},
	} {
		if got := etagListMatches([][]byte{[]byte(tt.header)}, `W/"abc"`, tt.weak); got != tt.want {
			t.Errorf("etagListMatches(%q, W/\"abc\", weak=%v): got %v, want %v", tt.header, tt.weak, got, tt.want)
		}
	}
}

func TestIfRangeHolds(t *testing.T) {
	mod := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header string
		mod    time.Time
		want   bool
	}{
		{"absent", "", mod, true},
		{"same tag", `"h"`, mod, true},
		{"other tag", `"g"`, mod, false},
		{"weak tag", `W/"h"`, mod, false},
		{"same date", "Fri, 01 Mar 2024 10:00:00 GMT", mod, true},
		{"later date", "Fri, 01 Mar 2024 10:00:01 GMT", mod, false},
		{"date without last-modified", "Fri, 01 Mar 2024 10:00:00 GMT", time.Time{}, false},
		{"garbage", "soon", mod, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := ifRangeHolds([]byte(tt.header), `"h"`, tt.mod), tt.want; got != want {
				t.Errorf("ifRangeHolds(%q): got %v, want %v", tt.header, got, want)
			}
		})
	}
}

// readerFromRecorder records what a ReadFrom receives.
type readerFromRecorder struct {
	got io.Reader
	n   int64
}

func (r *readerFromRecorder) Write(p []byte) (int, error) { r.n += int64(len(p)); return len(p), nil }

func (r *readerFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.got = src
	n, err := io.Copy(struct{ io.Writer }{r}, src)
	return n, err
}

// TestFileSectionShape pins what makes a range go out with sendfile:
// fasthttp's body writer must receive an *io.LimitedReader around the
// *os.File itself.
func TestFileSectionShape(t *testing.T) {
	name := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(name, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(3, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	s := newFileSection(f, 4)
	defer s.Close()
	rec := &readerFromRecorder{}
	n, err := s.WriteTo(rec)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n, int64(4); got != want {
		t.Errorf("written: got %d, want %d", got, want)
	}
	lr, ok := rec.got.(*io.LimitedReader)
	if !ok {
		t.Fatalf("ReadFrom got %T, want *io.LimitedReader", rec.got)
	}
	if _, ok := lr.R.(*os.File); !ok {
		t.Errorf("LimitedReader wraps %T, want *os.File", lr.R)
	}

	// Plain reading gives the same bytes.
	if _, err := f.Seek(3, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(newFileSection(f, 4))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "3456"; got != want {
		t.Errorf("read: got %q, want %q", got, want)
	}
}

func TestContentType(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/index.html", "text/html; charset=utf-8"},
		{"/INDEX.HTM", "text/html; charset=utf-8"},
		{"/a.b/c", "application/octet-stream"},
		{"/.well-known/x", "application/octet-stream"},
		{"/archive.tar.gz", "application/gzip"},
		{"/x.", "application/octet-stream"},
	}
	for _, tt := range tests {
		if got := contentType(tt.path); got != tt.want {
			t.Errorf("contentType(%q): got %q, want %q", tt.path, got, tt.want)
		}
	}
}

func FuzzETagList(f *testing.F) {
	for _, s := range []string{`"abc"`, `W/"abc"`, `*`, `"a", W/"b", "abc"`, `"`, `W/`, `,,"abc`, `W/W/"abc"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		const tag = `"abc"`
		weak := etagListMatches([][]byte{[]byte(header)}, tag, true)
		strong := etagListMatches([][]byte{[]byte(header)}, tag, false)
		if strong && !weak {
			t.Fatalf("%q matches strongly but not weakly", header)
		}
		if weak && !strings.Contains(header, tag) && !strings.Contains(header, "*") {
			t.Fatalf("%q matches %s without containing it", header, tag)
		}
	})
}
