package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// TestLargeDeployIndex: a deploy of more than --edge-index-min-entries
// entries, once published and requested, is looked up in an in-memory index
// (atoll_edge_index_deploys 1), which answers exactly what the manifest in
// bbolt answers: the same deploy's twin, served through its preview host
// (never indexed), gives the same status, Location, ETag and body for
// files, directory indexes, redirects, clean URLs, case and absent paths.
// Once the site publishes another deploy the index is dropped.
func TestLargeDeployIndex(t *testing.T) {
	t.Parallel()
	s := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true, Flags: []string{"--edge-index-min-entries", "2000"}})
	s.Start()
	blobs := map[string]string{} // content -> hash
	for _, c := range []string{"<h1>home</h1>", "<h1>docs</h1>", "<h1>about</h1>", "<h1>page</h1>", "<h1>other</h1>"} {
		h := atolltest.SHA256Hex([]byte(c))
		if st, body := s.API("PUT", "/v1/blobs/"+h, s.Token(), "", strings.NewReader(c)); st/100 != 2 {
			t.Fatalf("PUT blob: %d %v", st, body)
		}
		blobs[c] = h
	}
	const entries = 3000
	files := map[string]string{
		"/index.html": blobs["<h1>home</h1>"], "/docs/index.html": blobs["<h1>docs</h1>"],
		"/about.html": blobs["<h1>about</h1>"], "/Case.html": blobs["<h1>other</h1>"],
	}
	for i := range entries {
		files[fmt.Sprintf("/p/%05d.html", i)] = blobs["<h1>page</h1>"]
	}
	s.MustCLI("site", "create", "big")
	live := createDeploy(t, s, "big", files)
	twin := createDeploy(t, s, "big", files)
	if st, body := s.API("POST", "/v1/deploys/"+live+"/publish", s.Token(), "", nil); st != 200 {
		t.Fatalf("publish: %d %v", st, body)
	}

	s.Get("GET", "big.localhost", "/")
	waitMetric(t, s, "atoll_edge_index_deploys 1")

	paths := []string{"/", "/index.html", "/docs", "/docs/", "/docs/index.html", "/about", "/about/",
		"/about.html", "/case.html", "/Case", "/CASE.html", "/nope", "/nope/", "/p/00001", "/p/00001.html",
		"/p/00001.html/", "/p/02999.html", "/p/03000.html", "/p/", "/p", "/p//00002.html", "/p/./00003.html",
		"/docs/../about", "/p/00004.html?x=1"}
	for _, p := range paths {
		got := answer(t, s, "big.localhost", p)
		want := answer(t, s, twin+"--big.localhost", p)
		if got != want {
			t.Errorf("GET %s: %s from the index, %s from bbolt", p, got, want)
		}
	}

	other := createDeploy(t, s, "big", map[string]string{"/index.html": blobs["<h1>other</h1>"]})
	if st, body := s.API("POST", "/v1/deploys/"+other+"/publish", s.Token(), "", nil); st != 200 {
		t.Fatalf("publish: %d %v", st, body)
	}
	s.Get("GET", "big.localhost", "/") // the edge sees the change
	waitMetric(t, s, "atoll_edge_index_deploys 0")
	if resp, body := s.Get("GET", live+"--big.localhost", "/p/00005.html"); resp.StatusCode != 200 || body != "<h1>page</h1>" {
		t.Fatalf("preview of the superseded deploy: %d %q", resp.StatusCode, body)
	}
}

// createDeploy creates a ready deploy of site with files (path -> hash of
// an uploaded blob) through the API, the manifest streamed as one JSON
// body, and returns its id.
func createDeploy(t *testing.T, s *atolltest.Server, site string, files map[string]string) string {
	t.Helper()
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriter(pw)
		bw.WriteString(`{"files":{`)
		first := true
		for p, h := range files {
			if !first {
				bw.WriteByte(',')
			}
			first = false
			fmt.Fprintf(bw, "%q:%q", p, h)
		}
		bw.WriteString("}}")
		pw.CloseWithError(bw.Flush())
	}()
	st, body := s.API("POST", "/v1/sites/"+site+"/deploys", s.Token(), "application/json", pr)
	if st/100 != 2 {
		t.Fatalf("create deploy: %d %v", st, body)
	}
	if req, _ := body["required"].([]any); len(req) > 0 {
		t.Fatalf("create deploy: %d blobs required", len(req))
	}
	return body["id"].(string)
}

// answer sums up the edge's answer to GET path on host.
func answer(t *testing.T, s *atolltest.Server, host, path string) string {
	t.Helper()
	resp, body := s.Get("GET", host, path)
	return fmt.Sprintf("%d loc=%q etag=%q body=%q", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("ETag"), body)
}

// waitMetric waits until the node's /metrics has line.
func waitMetric(t *testing.T, s *atolltest.Server, line string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		_, metrics, err := s.Node.API(t.Context(), "GET", "/metrics", "", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(metrics, []byte("\n"+line+"\n")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics has no %q after a minute", line)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
