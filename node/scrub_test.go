package node_test

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder/client"
	"github.com/atoll-hosting/atoll/node"
	"github.com/atoll-hosting/atoll/node/nodetest"
)

// textOf returns n bytes of compressible text, different for each seed.
func textOf(n int, seed uint64) string {
	words := []string{"atoll", "scrub", "<div>", "</div>", "blob", "edge", "owner", "\n", "quarantine", "bytes"}
	r := rand.New(rand.NewPCG(seed, 7))
	var b strings.Builder
	fmt.Fprintf(&b, "/* %d */\n", seed)
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.String()[:n]
}

// codings a client may ask for; "" asks for the identity bytes.
var codings = []string{"", "gzip", "br", "zstd"}

// getCoded fetches path of host from an edge with Accept-Encoding coding
// and returns the status, the decoded body and the Content-Encoding.
func getCoded(t *testing.T, edgeURL, host, path, coding string) (status int, body, encoding string) {
	t.Helper()
	req, err := http.NewRequest("GET", edgeURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if coding != "" {
		req.Header.Set("Accept-Encoding", coding)
	}
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
	case "gzip":
		if r, err = gzip.NewReader(resp.Body); err != nil {
			return resp.StatusCode, "undecodable gzip: " + err.Error(), ce
		}
	case "br":
		r = brotli.NewReader(resp.Body)
	case "zstd":
		d, err := zstd.NewReader(resp.Body)
		if err != nil {
			return resp.StatusCode, "undecodable zstd: " + err.Error(), ce
		}
		defer d.Close()
		r = d
	default:
		t.Fatalf("GET %s%s: unexpected Content-Encoding %q", host, path, ce)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return resp.StatusCode, "undecodable body: " + err.Error(), ce
	}
	return resp.StatusCode, string(b), ce
}

// checkEverywhere reads every file through every running member's edge in
// every coding and fails on anything but 200 and the original bytes.
func checkEverywhere(t *testing.T, c *nodetest.Cluster, host string, files map[string]string) {
	t.Helper()
	for _, m := range c.Running() {
		for name, want := range files {
			for _, coding := range codings {
				status, got, _ := getCoded(t, m.Node.EdgeURL(), host, "/"+name, coding)
				if status != 200 || got != want {
					t.Errorf("%s /%s (Accept-Encoding %q): %d, %d bytes (%q...); want 200 and the original %d bytes",
						m.Cfg.ID, name, coding, status, len(got), got[:min(len(got), 20)], len(want))
				}
			}
		}
	}
}

// blobPath returns the path of a blob's file (ext "", ".gz", ".br", ".zst")
// in m's store.
func blobPath(m *nodetest.Member, hash, ext string) string {
	return filepath.Join(m.Cfg.DataDir, "blobs", hash[:2], hash+ext)
}

// flip corrupts one byte in the middle of a file, in place (the way a disk
// rots: same inode, same size).
func flip(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	off := fi.Size() / 2
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x20
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// quarantined lists the folders in m's blob quarantine.
func quarantined(t *testing.T, m *nodetest.Member) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(m.Cfg.DataDir, "blobs", blobstore.QuarantineFolder))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func scrub(t *testing.T, cl *client.Client, id string) atoll.ScrubStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := cl.ScrubNode(ctx, id)
	for err == nil && st.Running {
		time.Sleep(50 * time.Millisecond)
		st, err = cl.ScrubStatus(ctx, id)
	}
	if err != nil {
		t.Fatalf("scrub %s: %v", id, err)
	}
	return st
}

// TestScrubReplacesCorruptCopies flips bytes of blob files on one owner's
// disk (an identity file served from disk, one served from the edge's
// memory, and a compressed variant), scrubs that node through another
// node's API, and reads every file through every node's edge: the bytes
// must be the original ones, in every coding.
func TestScrubReplacesCorruptCopies(t *testing.T) {
	c := nodetest.New(t, 3, 1, func(cfg *node.Config) {
		cfg.Replicas = 2
		cfg.ScrubRate = 1 << 30
	})
	ctx := context.Background()
	cl := c.Client(c.Leader())
	if _, err := cl.CreateSite(ctx, "docs", nil, 0); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"big.js":     textOf(200<<10, 1), // above serve's 64 KiB memory limit: streamed from disk
		"index.html": textOf(3<<10, 2),   // small: kept in the edge's memory once read
		"site.css":   textOf(20<<10, 3),  // its gzip variant gets corrupted
	}
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deploy(t, cl, "docs", dir)
	c.WaitReady() // every node has applied the publish
	const host = "docs.localhost"
	// Every node reads every file in every coding: non-owners fetch their
	// own copies, and every edge holds index.html in memory.
	checkEverywhere(t, c, host, files)

	big, index, css := sha(files["big.js"]), sha(files["index.html"]), sha(files["site.css"])
	target := c.Member(c.Leader().Node.Owners(big)[0])
	for _, h := range []string{big, index, css} {
		if !target.Node.LocalBlobs().Has(h) {
			t.Fatalf("%s lacks blob %s after reading it through its edge", target.Cfg.ID, h[:8])
		}
	}
	// The variants are made in the background (blobstore, I14).
	if err := target.Node.LocalBlobs().WaitCompressed(t.Context()); err != nil {
		t.Fatal(err)
	}
	flip(t, blobPath(target, big, ""))
	flip(t, blobPath(target, index, ""))
	flip(t, blobPath(target, css, ".gz"))

	// The test can see corruption: before the scrub, the target's edge
	// streams the flipped bytes of big.js from its disk.
	if status, got, _ := getCoded(t, target.Node.EdgeURL(), host, "/big.js", ""); status != 200 || got == files["big.js"] {
		t.Fatalf("before the scrub, %s served big.js intact (%d); the flip is not observable, the test proves nothing", target.Cfg.ID, status)
	}

	// Scrub the target through another node: the request is forwarded.
	var via *nodetest.Member
	for _, m := range c.Running() {
		if m != target {
			via = m
			break
		}
	}
	var held int
	target.Node.LocalBlobs().Walk(ctx, func(string) error { held++; return nil })
	st := scrub(t, c.Client(via), target.Cfg.ID)
	if st.ID != target.Cfg.ID || st.Trigger != "request" || st.Checked != held || st.Corrupt != 3 || st.Repaired != 3 || st.Error != "" {
		t.Fatalf("scrub of %s through %s: %+v; want %d checked, 3 corrupt, 3 repaired", target.Cfg.ID, via.Cfg.ID, st, held)
	}

	// Quarantined (the flipped bytes kept aside), and replaced by intact
	// copies.
	if q := quarantined(t, target); len(q) != 3 {
		t.Errorf("quarantine of %s: %v, want 3 folders", target.Cfg.ID, q)
	}
	for _, h := range []string{big, index, css} {
		if err := target.Node.LocalBlobs().Verify(h); err != nil {
			t.Errorf("blob %s on %s after the scrub: %v", h[:8], target.Cfg.ID, err)
		}
	}
	// Every node's edge, the target's included (it held index.html in
	// memory from before the flip), serves the original bytes.
	checkEverywhere(t, c, host, files)

	// A second pass finds nothing; a healthy node is scrubbed the same way.
	if st := scrub(t, c.Client(target), target.Cfg.ID); st.Corrupt != 0 || st.Checked != held {
		t.Errorf("second scrub of %s: %+v, want %d checked and nothing corrupt", target.Cfg.ID, st, held)
	}
	if st := scrub(t, c.Client(target), "edge1"); st.Corrupt != 0 || st.Checked == 0 {
		t.Errorf("scrub of edge1: %+v, want blobs checked and nothing corrupt", st)
	}
	if _, err := c.Client(target).ScrubNode(ctx, "nosuchnode"); !isStatus(err, http.StatusNotFound) {
		t.Errorf("scrub of an unknown node: %v, want 404", err)
	}
}

// TestCorruptCopySentToAPeerIsReplaced: a node that receives bytes not
// matching their hash from a peer tells it, and the peer replaces its copy
// without waiting for a scrub pass.
func TestCorruptCopySentToAPeerIsReplaced(t *testing.T) {
	c := nodetest.New(t, 3, 1, func(cfg *node.Config) { cfg.Replicas = 2 })
	body := textOf(30<<10, 4)
	h, edge, first := oneFileBehindEdge(t, c, body)
	flip(t, blobPath(first, h, ""))

	status, got, err := get(edge.Node.EdgeURL(), "s", "/f.txt")
	if err != nil || status != 200 || got != body {
		t.Fatalf("edge after a corrupt owner: %d, %d bytes, %v; want 200 and the original", status, len(got), err)
	}
	c.Eventually(10*time.Second, "the corrupt owner to replace its copy", func() bool {
		return first.Node.LocalBlobs().Verify(h) == nil && len(quarantined(t, first)) == 1
	})
}

func isStatus(err error, status int) bool {
	var ae *client.Error
	return errors.As(err, &ae) && ae.Status == status
}

// An owner below its free space reserve refuses pushes with 507: with two
// of three owners full, an upload reaches no majority and fails with 507
// and a message about disk space; serving goes on, and once the owners
// have room again the same deploy succeeds.
func TestUploadToFullOwnersFailsWith507(t *testing.T) {
	full := map[string]bool{"core2": true, "core3": true}
	c := nodetest.New(t, 3, 0, func(cfg *node.Config) {
		if full[cfg.ID] {
			cfg.MinFreeBytes = 1 << 62
		}
	})
	first := c.Member("core1")
	cl := c.Client(first)
	ctx := context.Background()
	if _, err := cl.CreateSite(ctx, "s", nil, 0); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>v1</h1>"), 0o644)
	_, err := cl.DeployDir(ctx, dir, "s", client.DeployOptions{Publish: true})
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusInsufficientStorage || !strings.Contains(ae.Message, "disk space") {
		t.Fatalf("deploy with 2 of 3 owners full: %v, want 507 about disk space", err)
	}
	for _, m := range c.Members {
		if entries, err := os.ReadDir(filepath.Join(m.Cfg.DataDir, "blobs", blobstore.TempFolder)); err != nil || len(entries) != 0 {
			t.Errorf("%s: temp files left: %d (%v)", m.Cfg.ID, len(entries), err)
		}
	}
	// Space returns (here: the reserve goes back to normal) and the same
	// deploy goes through.
	for _, m := range c.Members {
		if full[m.Cfg.ID] {
			c.Kill(m)
			m.Cfg.MinFreeBytes = 0
			c.Restart(m)
		}
	}
	c.WaitReady()
	deploy(t, cl, "s", dir)
	if status, got, err := get(first.Node.EdgeURL(), "s", "/"); err != nil || status != 200 || got != "<h1>v1</h1>" {
		t.Errorf("after recovery: %d %q %v", status, got, err)
	}
}
