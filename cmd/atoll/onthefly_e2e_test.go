package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll/atolltest"
)

// TestOnTheFlyCompression: from the moment of publish, a visitor who
// accepts br and gzip gets a compressed answer for a text file even though
// its stored variants do not exist yet (the compressor is off:
// --compress-workers -1, so compress_pending stays above 0 for certain);
// files over the bound, identity clients and ranges get the identity
// bytes. Once a node with workers has made the variants, the stored ones
// are served, and a cache holding the on-the-fly answer revalidates with a
// 304.
func TestOnTheFlyCompression(t *testing.T) {
	t.Parallel()
	s := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true, Flags: []string{"--compress-workers", "-1"}})
	s.Start()
	app := strings.Repeat("console.log('served compressed from the first request');\n", 800)
	big := strings.Repeat("a line of a text file too big to compress per request\n", (1<<20)/40)
	site := t.TempDir()
	writeTree(t, site, map[string]string{"app.js": app, "big.txt": big, "index.html": "<h1>hi</h1>"})
	s.MustCLI("site", "create", "fresh")
	s.MustCLI("deploy", site, "--site", "fresh")

	if _, st := s.API("GET", "/v1/status", s.Token(), "", nil); st["compress_pending"] != float64(2) {
		t.Fatalf("compress_pending = %v, want 2 (app.js and big.txt) with the compressor off", st["compress_pending"])
	}

	resp, body := s.Get("GET", "fresh.localhost", "/app.js", "Accept-Encoding", "gzip, deflate, br")
	checkAnswer(t, resp, "", 200, "", map[string]string{"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
	decoded, err := atolltest.Decode("gzip", []byte(body))
	if err != nil || string(decoded) != app {
		t.Fatalf("gzip body decodes to %d bytes (err %v), want the %d of app.js", len(decoded), err, len(app))
	}
	if len(body) > len(app)/4 {
		t.Errorf("compressed body is %d bytes for %d of text", len(body), len(app))
	}
	weak := resp.Header.Get("ETag")
	if !strings.HasPrefix(weak, `W/"`) || !strings.HasSuffix(weak, `-gzip"`) {
		t.Errorf("ETag of the on-the-fly answer = %q, want W/\"<hash>-gzip\"", weak)
	}
	if resp, _ := s.Get("GET", "fresh.localhost", "/app.js", "Accept-Encoding", "gzip", "If-None-Match", weak); resp.StatusCode != 304 {
		t.Errorf("If-None-Match %s: got %d, want 304", weak, resp.StatusCode)
	}

	identity := []struct {
		name string
		path string
		hdr  []string
		want int
	}{
		{"identity client", "/app.js", nil, 200},
		{"range", "/app.js", []string{"Accept-Encoding", "gzip", "Range", "bytes=0-6"}, 206},
		{"over the bound", "/big.txt", []string{"Accept-Encoding", "gzip, br"}, 200},
	}
	for _, tc := range identity {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := s.Get("GET", "fresh.localhost", tc.path, tc.hdr...)
			checkAnswer(t, resp, "", tc.want, "", map[string]string{"Content-Encoding": ""})
		})
	}

	_, metrics, err := s.Node.API(t.Context(), "GET", "/metrics", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := `atoll_edge_on_the_fly_total{result="compressed"} 1`; !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics has no %s", want)
	}

	// A node with workers makes the variants; then they are served, and
	// the on-the-fly tag still revalidates against the stored gzip.
	restartCompressing(t, s)
	resp, _ = s.Get("GET", "fresh.localhost", "/app.js", "Accept-Encoding", "gzip, br")
	checkAnswer(t, resp, "", 200, "", map[string]string{"Content-Encoding": "br"})
	resp, _ = s.Get("GET", "fresh.localhost", "/app.js", "Accept-Encoding", "gzip", "If-None-Match", weak)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("stored gzip, If-None-Match %s: got %d, want 304", weak, resp.StatusCode)
	}
}
