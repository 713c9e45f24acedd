package main

import (
	"crypto/rand"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll/atolltest"
)

// TestFullNodeStreamsBigFilesEndToEnd runs three core nodes, the third
// with its disk below the reserve, and a 20 MiB file deployed through the
// first: the full node serves it byte-exact, whole and in ranges, with
// conditional requests answered, streamed from its owners without a copy
// on its disk, and still reports its disk in /readyz. Once the owners'
// copies are corrupt, it no longer completes a 200 of the file: the
// visitor sees the answer cut short or a 503, never bad bytes as good.
func TestFullNodeStreamsBigFilesEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three processes")
	}
	core1, core2, full := startWithFullNode(t)

	big := make([]byte, 20<<20) // past what a full node holds in memory
	rand.Read(big)
	site := t.TempDir()
	writeTree(t, site, map[string]string{"index.html": "<h1>big</h1>", "big.bin": string(big)})
	core1.MustCLI("site", "create", "blog")
	core1.MustCLI("deploy", site, "--site", "blog")

	resp, got := full.Get("GET", "blog.localhost", "/big.bin")
	if resp.StatusCode != 200 || got != string(big) {
		t.Fatalf("full node serves /big.bin: %d, %d bytes, want 200 and the %d deployed", resp.StatusCode, len(got), len(big))
	}
	etag := resp.Header.Get("ETag")
	ranges := []struct {
		spec       string
		start, end int // end exclusive
	}{
		{"bytes=1000-2000999", 1000, 2001000},
		{"bytes=-100", len(big) - 100, len(big)},
		{"bytes=0-0", 0, 1},
	}
	for _, r := range ranges {
		resp, got := full.Get("GET", "blog.localhost", "/big.bin", "Range", r.spec)
		if resp.StatusCode != http.StatusPartialContent || got != string(big[r.start:r.end]) {
			t.Errorf("Range %s through the full node: %d, %d bytes, want 206 and bytes %d-%d", r.spec, resp.StatusCode, len(got), r.start, r.end-1)
		}
	}
	if resp, _ := full.Get("GET", "blog.localhost", "/big.bin", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match %s through the full node: %d, want 304", etag, resp.StatusCode)
	}
	if resp, got := full.Get("GET", "blog.localhost", "/big.bin", "Range", "bytes=5-9", "If-Range", `"other"`); resp.StatusCode != 200 || got != string(big) {
		t.Errorf("a Range with a stale If-Range through the full node: %d, %d bytes, want the whole file", resp.StatusCode, len(got))
	}

	var stored int64
	filepath.WalkDir(filepath.Join(full.Data, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				stored += fi.Size()
			}
		}
		return nil
	})
	if stored >= int64(len(big)) {
		t.Errorf("the full node's blobs dir holds %d bytes after streaming a %d-byte file", stored, len(big))
	}
	if left := tempFiles(t, full.Data); len(left) != 0 {
		t.Errorf("temp files on the full node: %v", left)
	}
	status, body := full.API("GET", "/readyz", "", "", nil)
	if low, _ := body["degraded"].(string); status != http.StatusOK || !strings.Contains(low, "disk space") {
		t.Errorf("/readyz of the full node: %d %v, want 200 with degraded naming the disk", status, body)
	}

	// Every copy on the owners goes bad: no good answer can be made.
	hash := atolltest.SHA256Hex(string(big))
	for _, s := range []*atolltest.Server{core1, core2} {
		p := filepath.Join(s.Data, "blobs", hash[:2], hash)
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatalf("corrupt %s's copy: %v", s.ID, err)
		}
		f.WriteAt([]byte{big[len(big)/2] ^ 1}, int64(len(big)/2))
		f.Close()
	}
	for _, hdr := range [][]string{nil, {"Range", "bytes=10-20"}} {
		resp, got, err := full.Fetch(t.Context(), "GET", "blog.localhost", "/big.bin", hdr...)
		if err == nil && resp.StatusCode/100 == 2 {
			t.Errorf("full node serves corrupt copies (%v): %d with %d bytes and no error, want the answer cut short or a 503", hdr, resp.StatusCode, len(got))
		}
	}
}
