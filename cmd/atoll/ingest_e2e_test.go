package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
)

// TestEndToEndBatchUpload runs 3 core nodes at R=3: `atoll deploy` sends
// its small files in batches (POST /v1/blobs) and every owner holds every
// blob afterwards, byte-exact on disk; a batch with one wrong hash is
// refused whole (no node holds any of it); a batch over the blob count
// limit is a 413; and the CLI still deploys through a node that answers
// the batch route 404, as a node from before batches does.
func TestEndToEndBatchUpload(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three processes")
	}
	const token = coresToken
	cores := startCores(t, 3, "--replicas", "3")
	core1, core2, core3 := cores[0], cores[1], cores[2]

	// 300 small files and one of 3 MiB (batches), one over 4 MiB (its own
	// PUT).
	dir := t.TempDir()
	files := map[string]string{
		"big1.bin": strings.Repeat("1", 3<<20),
		"big2.bin": strings.Repeat("2", 4<<20+1),
	}
	for i := range 300 {
		files[fmt.Sprintf("p/%03d.html", i)] = fmt.Sprintf("<p>page %d</p>%s", i, strings.Repeat("x", i*37))
	}
	writeTree(t, dir, files)
	core2.MustCLI("site", "create", "shop")
	out := core2.MustCLI("deploy", dir, "--site", "shop")
	if !strings.Contains(out, fmt.Sprintf("%d uploaded", len(files))) {
		t.Fatalf("deploy:\n%s\nwant %d uploaded", out, len(files))
	}
	for _, s := range cores {
		for name, body := range files {
			waitBlobOnDisk(t, s, name, body)
		}
	}

	// One wrong hash: the whole batch is refused, nothing stored anywhere.
	good, bad := "<p>good, never stored</p>", "<p>bad</p>"
	var batch bytes.Buffer
	atoll.WriteBlobRecord(&batch, atolltest.SHA256Hex(good), int64(len(good)), strings.NewReader(good))
	atoll.WriteBlobRecord(&batch, atolltest.SHA256Hex("something else"), int64(len(bad)), strings.NewReader(bad))
	status, body := core1.API("POST", "/v1/blobs", token, atoll.BlobBatchContentType, &batch)
	if msg, _ := body["error"].(string); status != http.StatusBadRequest || !strings.Contains(msg, atolltest.SHA256Hex("something else")) {
		t.Fatalf("batch with a wrong hash: %d %v, want 400 naming the hash", status, body)
	}
	for _, s := range cores {
		if _, err := os.Stat(blobPath(s, atolltest.SHA256Hex(good))); err == nil {
			t.Errorf("%s holds a blob of a refused batch", s.ID)
		}
	}

	// More blobs than a batch may carry: 413.
	batch.Reset()
	for range 4097 {
		atoll.WriteBlobRecord(&batch, atolltest.SHA256Hex(""), 0, strings.NewReader(""))
	}
	if status, body := core1.API("POST", "/v1/blobs", token, atoll.BlobBatchContentType, &batch); status != http.StatusRequestEntityTooLarge {
		t.Errorf("batch of 4097 blobs: %d %v, want 413", status, body)
	}

	// A node without the batch route (a proxy answers it 404): the CLI
	// uploads file by file and the deploy succeeds.
	target, _ := url.Parse(core3.APIURL())
	rp := httputil.NewSingleHostReverseProxy(target)
	var refused, puts atomic.Int64
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" && r.URL.Path == "/v1/blobs" {
			refused.Add(1)
			http.Error(w, `{"error": "no such endpoint: POST /v1/blobs"}`, http.StatusNotFound)
			return
		}
		if r.Method == "PUT" && strings.HasPrefix(r.URL.Path, "/v1/blobs/") {
			puts.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	defer old.Close()
	files2 := map[string]string{}
	for i := range 40 {
		files2[fmt.Sprintf("q/%d.html", i)] = fmt.Sprintf("<p>second site, page %d</p>", i)
	}
	dir2 := t.TempDir()
	writeTree(t, dir2, files2)
	core3.MustCLI("site", "create", "old")
	core3.MustCLI("deploy", dir2, "--site", "old", "--api", old.URL)
	if refused.Load() == 0 || puts.Load() != int64(len(files2)) {
		t.Errorf("through a node without batches: %d batches refused, %d PUTs; want at least one refused, then %d PUTs", refused.Load(), puts.Load(), len(files2))
	}
	for name, body := range files2 {
		if _, got := core1.Get("GET", "old.localhost", "/"+name); got != body {
			t.Errorf("/%s on old: got %q, want %q", name, got, body)
		}
	}
}

// blobPath is where node s keeps blob hash on disk.
func blobPath(s *atolltest.Server, hash string) string {
	return filepath.Join(s.Data, "blobs", hash[:2], hash)
}

// waitBlobOnDisk waits (at most 30 s: the owner past the majority gets its
// copy just after the answer) until s holds file name's blob, and checks
// its bytes.
func waitBlobOnDisk(t *testing.T, s *atolltest.Server, name, body string) {
	t.Helper()
	p := blobPath(s, atolltest.SHA256Hex(body))
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := os.ReadFile(p)
		if err == nil {
			if string(got) != body {
				t.Fatalf("%s: %s holds %d bytes that differ from the file's %d", s.ID, name, len(got), len(body))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not hold %s: %v", s.ID, name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
