package serve

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// freshText is a compressible page whose variants are not made yet.
var freshText = []byte(strings.Repeat("<p>a page of the site, fresh from a deploy</p>\n", 400))

// addPending stores content as a blob queued for compression (no variant,
// Pending) at path p of the live deploy d2, and returns its hash.
func (fx *fixture) addPending(t *testing.T, p string, content []byte) string {
	t.Helper()
	hash := fx.blobs.put(t, content)
	fx.blobs.mu.Lock()
	fx.blobs.pending[hash] = true
	fx.blobs.mu.Unlock()
	fx.cat.mu.Lock()
	fx.cat.files[d2.ID][p] = hash
	fx.cat.mu.Unlock()
	return hash
}

func TestOnTheFly(t *testing.T) {
	fx := newFixture(t)
	hash := fx.addPending(t, "/fresh.html", freshText)
	weak := `W/` + etagOf(hash, "gzip")
	gz := func(h ...string) request {
		return request{target: "/fresh.html", header: append([]string{"Accept-Encoding: gzip, deflate, br"}, h...)}
	}
	tests := []struct {
		name      string
		req       request
		status    int
		wantEnc   string
		wantETag  string
		wantRange string
	}{
		{"gzip and br accepted", gz(), 200, "gzip", weak, ""},
		{"no Accept-Encoding", request{target: "/fresh.html"}, 200, "", etagOf(hash, ""), ""},
		{"br only", request{target: "/fresh.html", header: []string{"Accept-Encoding: br"}}, 200, "", etagOf(hash, ""), ""},
		{"identity preferred", request{target: "/fresh.html", header: []string{"Accept-Encoding: gzip;q=0.5, identity"}}, 200, "", etagOf(hash, ""), ""},
		{"star", request{target: "/fresh.html", header: []string{"Accept-Encoding: *"}}, 200, "gzip", weak, ""},
		{"revalidate weak tag", gz("If-None-Match: " + weak), 304, "", weak, ""},
		{"revalidate with the stored variant's tag", gz(`If-None-Match: ` + etagOf(hash, "gzip")), 304, "", weak, ""},
		{"identity tag does not match", gz(`If-None-Match: ` + etagOf(hash, "")), 200, "gzip", weak, ""},
		{"If-Match is strong", gz("If-Match: " + weak), 412, "", "", ""},
		{"range from identity", gz("Range: bytes=0-9"), 206, "", etagOf(hash, ""), "bytes 0-9/" + strconv.Itoa(len(freshText))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := fx.do(t, tt.req)
			if resp.status != tt.status {
				t.Fatalf("status: got %d, want %d", resp.status, tt.status)
			}
			if got := resp.get("Content-Encoding"); got != tt.wantEnc {
				t.Errorf("Content-Encoding: got %q, want %q", got, tt.wantEnc)
			}
			if got := resp.get("ETag"); got != tt.wantETag {
				t.Errorf("ETag: got %q, want %q", got, tt.wantETag)
			}
			if tt.status == 412 {
				return
			}
			if got, want := resp.get("Vary"), "Accept-Encoding"; got != want {
				t.Errorf("Vary: got %q, want %q", got, want)
			}
			if got := resp.get("Content-Range"); got != tt.wantRange {
				t.Errorf("Content-Range: got %q, want %q", got, tt.wantRange)
			}
			switch tt.status {
			case 200:
				if got := decompress(t, tt.wantEnc, resp.body); !bytes.Equal(got, freshText) {
					t.Errorf("body decodes to %d bytes, want the %d of the file", len(got), len(freshText))
				}
				if tt.wantEnc != "" && len(resp.body) >= len(freshText)/2 {
					t.Errorf("compressed body is %d bytes for %d of text", len(resp.body), len(freshText))
				}
			case 206:
				if got, want := string(resp.body), string(freshText[:10]); got != want {
					t.Errorf("body: got %q, want %q", got, want)
				}
			}
		})
	}
}

// TestOnTheFlyHead checks that HEAD announces the length of the body GET
// sends.
func TestOnTheFlyHead(t *testing.T) {
	fx := newFixture(t)
	fx.addPending(t, "/fresh.html", freshText)
	get := fx.do(t, request{target: "/fresh.html", header: []string{"Accept-Encoding: gzip"}})
	head := fx.do(t, request{method: "HEAD", target: "/fresh.html", header: []string{"Accept-Encoding: gzip"}})
	if got, want := head.get("Content-Encoding"), "gzip"; got != want {
		t.Fatalf("HEAD Content-Encoding: got %q, want %q", got, want)
	}
	if got, want := head.get("Content-Length"), strconv.Itoa(len(get.body)); got != want {
		t.Errorf("HEAD Content-Length: got %s, want %s (the GET body)", got, want)
	}
	if got, want := head.get("ETag"), get.get("ETag"); got != want {
		t.Errorf("HEAD ETag: got %q, want %q", got, want)
	}
}

// TestOnTheFlyIdentity covers the blobs and moments that get the identity
// bytes although the client accepts gzip.
func TestOnTheFlyIdentity(t *testing.T) {
	fx := newFixture(t)
	fx.addPending(t, "/fresh.html", freshText)
	fx.addPending(t, "/huge.txt", bytes.Repeat([]byte("a line of text that compresses well\n"), MaxOnTheFlySize/36+1))
	fx.addPending(t, "/noise.txt", pseudoRandom(8<<10))
	notPending := fx.blobs.put(t, freshText[1:])
	fx.cat.mu.Lock()
	fx.cat.files[d2.ID]["/decided.html"] = notPending
	fx.cat.mu.Unlock()

	check := func(t *testing.T, p string, wantVary string) {
		t.Helper()
		resp := fx.do(t, request{target: p, header: []string{"Accept-Encoding: gzip, br"}})
		if resp.status != 200 {
			t.Fatalf("status: got %d, want 200", resp.status)
		}
		if got := resp.get("Content-Encoding"); got != "" {
			t.Errorf("Content-Encoding: got %q, want identity", got)
		}
		if got := resp.get("Vary"); got != wantVary {
			t.Errorf("Vary: got %q, want %q", got, wantVary)
		}
	}
	t.Run("over the size bound", func(t *testing.T) { check(t, "/huge.txt", "") })
	t.Run("not smaller", func(t *testing.T) { check(t, "/noise.txt", "Accept-Encoding") })
	t.Run("compressor decided", func(t *testing.T) { check(t, "/decided.html", "") })
	t.Run("every slot busy", func(t *testing.T) {
		var held []*otfSlot
		for range cap(fx.h.otfSlots) {
			held = append(held, <-fx.h.otfSlots)
		}
		check(t, "/fresh.html", "Accept-Encoding")
		for _, s := range held {
			fx.h.otfSlots <- s
		}
		resp := fx.do(t, request{target: "/fresh.html", header: []string{"Accept-Encoding: gzip"}})
		if got, want := resp.get("Content-Encoding"), "gzip"; got != want {
			t.Errorf("slots free again: Content-Encoding %q, want %q", got, want)
		}
	})
}

// TestOnTheFlyCounted: atoll_edge_on_the_fly_total says how often the
// edge compressed, and how often it sent the identity bytes instead.
func TestOnTheFlyCounted(t *testing.T) {
	fx := newFixtureConfig(t, Config{Domain: testDomain, Stats: NewStats(false)})
	fx.addPending(t, "/fresh.html", freshText)
	fx.addPending(t, "/noise.txt", pseudoRandom(8<<10))
	get := func(p string) {
		t.Helper()
		fx.do(t, request{target: p, header: []string{"Accept-Encoding: gzip"}})
	}
	get("/fresh.html")
	get("/fresh.html")
	get("/noise.txt")
	var held []*otfSlot
	for range cap(fx.h.otfSlots) {
		held = append(held, <-fx.h.otfSlots)
	}
	get("/fresh.html")
	for _, s := range held {
		fx.h.otfSlots <- s
	}
	for result, want := range map[string]float64{"compressed": 2, "not_smaller": 1, "busy": 1} {
		if got := gathered(t, fx.h.stats, "atoll_edge_on_the_fly_total", map[string]string{"result": result}); got != want {
			t.Errorf("atoll_edge_on_the_fly_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}

// TestOnTheFlyConcurrent: many visitors at once share the slots' writers
// without mixing their bodies; each gets gzip or, when the slots are
// busy, the identity bytes, and either way exactly the file.
func TestOnTheFlyConcurrent(t *testing.T) {
	fx := newFixture(t)
	fx.addPending(t, "/fresh.html", freshText)
	other := []byte(strings.Repeat("<li>another page, other bytes</li>\n", 600))
	fx.addPending(t, "/other.html", other)
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			p, want := "/fresh.html", freshText
			if i%2 == 1 {
				p, want = "/other.html", other
			}
			for range 10 {
				resp, err := fx.tryDo(request{target: p, header: []string{"Accept-Encoding: gzip"}})
				if err != nil {
					errs <- err
					return
				}
				body := resp.body
				if resp.get("Content-Encoding") == "gzip" {
					zr, err := gzip.NewReader(bytes.NewReader(body))
					if err != nil {
						errs <- fmt.Errorf("%s: %v", p, err)
						return
					}
					if body, err = io.ReadAll(zr); err != nil {
						errs <- fmt.Errorf("%s: %v", p, err)
						return
					}
				}
				if !bytes.Equal(body, want) {
					errs <- fmt.Errorf("%s: got %d bytes that are not the file", p, len(body))
					return
				}
			}
			errs <- nil
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// BenchmarkOnTheFlyCodings compares the candidate codings for compressing
// per request (the choice in onthefly.go), each writer made once and reset
// per body as the slots do: MB/s of input and the ratio of output to input,
// on HTML-like text of varied words. Run with:
//
//	go test -run '^$' -bench OnTheFlyCodings ./serve/
func BenchmarkOnTheFlyCodings(b *testing.B) {
	type writer interface {
		io.WriteCloser
		Reset(io.Writer)
	}
	codecs := []struct {
		name string
		new  func() writer
	}{
		{"gzip1", func() writer { zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed); return zw }},
		{"gzip6", func() writer { zw, _ := gzip.NewWriterLevel(nil, 6); return zw }},
		{"br1", func() writer { return brotli.NewWriterLevel(nil, 1) }},
		{"br4", func() writer { return brotli.NewWriterLevel(nil, 4) }},
		{"zstd-fastest", func() writer {
			zw, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
			return zw
		}},
	}
	for _, size := range []int{16 << 10, 256 << 10} {
		text := variedText(size)
		for _, c := range codecs {
			b.Run(fmt.Sprintf("%s/%dk", c.name, size>>10), func(b *testing.B) {
				var out bytes.Buffer
				w := c.new()
				b.SetBytes(int64(size))
				for b.Loop() {
					out.Reset()
					w.Reset(&out)
					if _, err := w.Write(text); err != nil {
						b.Fatal(err)
					}
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(out.Len())/float64(size), "ratio")
			})
		}
	}
}

// variedText returns n bytes of HTML-like text whose words vary as a real
// page's do, from a fixed seed.
func variedText(n int) []byte {
	words := strings.Fields(`atoll static site <div class="card"> </div> hosting edge deploy
		blob <p> </p> <a href="/docs/guide.html"> </a> the of and to in is for with on visitors
		compression variants replicated nodes raft <li> </li> <span> </span> content cache`)
	r := rand.New(rand.NewPCG(16, 1))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(12) == 0 {
			fmt.Fprintf(&b, " %d\n", r.IntN(100000))
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}
