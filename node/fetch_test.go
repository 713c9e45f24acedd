package node_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/node"
	"github.com/atoll-hosting/atoll/node/nodetest"
)

// A small blob fetched on a cold miss is answered from the bytes received,
// not from the copy written to disk: the visitor gets it even when the
// edge cannot write that copy.
func TestEdgeAnswersColdMissBeforeItsCopyIsWritten(t *testing.T) {
	c := nodetest.New(t, 3, 1, func(cfg *node.Config) { cfg.Replicas = 2 })
	body := strings.Repeat("answered from memory ", 200)
	h, edge, _ := oneFileBehindEdge(t, c, body)

	tmp := filepath.Join(edge.Cfg.DataDir, "blobs", blobstore.TempFolder)
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, []byte("not a folder: no temp file can be made"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(tmp); os.Mkdir(tmp, 0o755) })

	for i := range 2 {
		status, got, err := get(edge.Node.EdgeURL(), "s", "/f.txt")
		if err != nil || status != 200 || got != body {
			t.Fatalf("request %d on an edge that cannot write the copy: %d, %d bytes, %v; want 200 and the original %d bytes", i+1, status, len(got), err, len(body))
		}
	}
	c.Eventually(5*time.Second, "the failed copy to be given up", func() bool {
		return !edge.Node.LocalBlobs().Has(h)
	})
}

// The variants received with a fetched blob are checked before one is
// served from memory: a corrupt one is never sent.
func TestEdgeChecksAFetchedVariantBeforeServingIt(t *testing.T) {
	c := nodetest.New(t, 3, 1, func(cfg *node.Config) { cfg.Replicas = 1 })
	body := strings.Repeat("only the owner's variant is bad ", 100)
	h, edge, owner := oneFileBehindEdge(t, c, body)

	var br string
	c.Eventually(10*time.Second, "the owner's brotli variant", func() bool {
		filepath.WalkDir(owner.Cfg.DataDir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Name() == h+".br" {
				br = p
			}
			return nil
		})
		return br != ""
	})
	b, err := os.ReadFile(br)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(b) / 3; i < len(b); i++ {
		b[i] ^= 0x5a
	}
	if err := os.WriteFile(br, b, 0o644); err != nil {
		t.Fatal(err)
	}

	for i := range 2 {
		status, got, _ := getCoded(t, edge.Node.EdgeURL(), "s.localhost", "/f.txt", "br")
		if status != 200 || got != body {
			t.Fatalf("request %d with Accept-Encoding br after the owner's variant went bad: %d, %q...; want 200 and the original %d bytes",
				i+1, status, got[:min(len(got), 40)], len(body))
		}
	}
}
