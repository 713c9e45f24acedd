package node_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/andybalholm/brotli"

	"github.com/atoll-hosting/atoll/node"
	"github.com/atoll-hosting/atoll/node/nodetest"
)

// TestEdgeServesVariantsMadeAfterTheUpload: an upload is acknowledged
// before its compressed variants exist; the edge serves the identity bytes
// meanwhile, and the br variant once the store has made it, although it
// had already answered (and cached) the file without it.
func TestEdgeServesVariantsMadeAfterTheUpload(t *testing.T) {
	// No background workers: the test decides when the variants appear.
	c := nodetest.New(t, 1, 0, func(cfg *node.Config) { cfg.CompressWorkers = -1 })
	m := c.Leader()
	cl := c.Client(m)
	if _, err := cl.CreateSite(context.Background(), "s", nil, 0); err != nil {
		t.Fatal(err)
	}
	body := textOf(20<<10, 41)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "page.html"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	deploy(t, cl, "s", dir)

	encodingOf := func() string {
		t.Helper()
		status, got, ce := getWithEncoding(t, m.Node.EdgeURL(), "s.localhost", "/page.html", "br")
		if status != 200 || got != body {
			t.Fatalf("GET /page.html (br): %d, %d bytes; want 200 and the %d bytes deployed", status, len(got), len(body))
		}
		return ce
	}
	if got := encodingOf(); got != "" {
		t.Fatalf("Content-Encoding before the variants exist = %q, want identity", got)
	}
	if err := m.Node.LocalBlobs().Compress(context.Background(), sha(body)); err != nil {
		t.Fatalf("Compress: %v", err)
	}
	if got := encodingOf(); got != "br" {
		t.Errorf("Content-Encoding once the variants exist = %q, want br", got)
	}
}

// getWithEncoding fetches path of host with Accept-Encoding coding and
// returns the status, the decoded body and the Content-Encoding.
func getWithEncoding(t *testing.T, edgeURL, host, path, coding string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest("GET", edgeURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("Accept-Encoding", coding)
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	ce := resp.Header.Get("Content-Encoding")
	var r io.Reader = resp.Body
	switch ce {
	case "":
	case "br":
		r = brotli.NewReader(resp.Body)
	default:
		t.Fatalf("GET %s%s: Content-Encoding %q, want br or none", host, path, ce)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	return resp.StatusCode, string(b), ce
}
