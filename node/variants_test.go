package node_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

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

	encodingOf := func(accept string) string {
		t.Helper()
		status, got, ce := getCoded(t, m.Node.EdgeURL(), "s.localhost", "/page.html", accept)
		if status != 200 || got != body {
			t.Fatalf("GET /page.html (%s): %d, %d bytes; want 200 and the %d bytes deployed", accept, status, len(got), len(body))
		}
		return ce
	}
	if got := encodingOf("br"); got != "" {
		t.Fatalf("Content-Encoding (br only) before the variants exist = %q, want identity", got)
	}
	if got := encodingOf("gzip, br"); got != "gzip" {
		t.Fatalf("Content-Encoding (gzip, br) before the variants exist = %q, want gzip made per request", got)
	}
	if err := m.Node.LocalBlobs().Compress(context.Background(), sha(body)); err != nil {
		t.Fatalf("Compress: %v", err)
	}
	if got := encodingOf("gzip, br"); got != "br" {
		t.Errorf("Content-Encoding once the variants exist = %q, want br", got)
	}
}
