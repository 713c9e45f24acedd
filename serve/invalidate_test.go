package serve

import (
	"os"
	"path/filepath"
	"testing"
)

// TestInvalidateDropsTheMemoryCopy: a small file answered from memory is
// read from Blobs again once its blob is invalidated (node does it when it
// quarantines a corrupt copy), so the edge serves what the disk now holds.
func TestInvalidateDropsTheMemoryCopy(t *testing.T) {
	cf := newCachedFixture(t, Config{})
	if got, want := string(cf.doCached(t, request{target: "/about"}).body), "about v2\n"; got != want {
		t.Fatalf("warm: got %q, want %q", got, want)
	}
	about := filepath.Join(cf.blobs.dir, cf.hash["about"])
	if err := os.Rename(about, about+".quarantined"); err != nil {
		t.Fatal(err)
	}
	// Still answered from memory: those bytes were checked when loaded.
	if got, want := cf.doCached(t, request{target: "/about"}).status, 200; got != want {
		t.Fatalf("from memory: got %d, want %d", got, want)
	}
	cf.h.Invalidate(cf.hash["about"])
	cf.h.Invalidate(cf.hash["not a blob"]) // unknown: no-op
	if got, want := cf.doCached(t, request{target: "/about"}).status, 503; got != want {
		t.Errorf("after Invalidate, with the blob gone: got %d, want %d (served from memory?)", got, want)
	}
	if err := os.Rename(about+".quarantined", about); err != nil {
		t.Fatal(err)
	}
	if got, want := string(cf.doCached(t, request{target: "/about"}).body), "about v2\n"; got != want {
		t.Errorf("replaced: got %q, want %q", got, want)
	}
	cf.logs.records(t)
}
