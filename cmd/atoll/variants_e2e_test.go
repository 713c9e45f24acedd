package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
)

// TestVariantsOncePerCluster runs three core processes at R=3: right
// after a deploy's publish every text file is answered compressed through
// every node (made per request until the variants exist); once the
// variants exist, every node holds the same variant files, and the
// compressing was done once per blob in the cluster: the nodes' compressed
// counters (GET /v1/status) add up to the number of blobs, and each node's
// received counter to the blobs it did not compress.
func TestVariantsOncePerCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three processes")
	}
	const token = coresToken
	cores := startCores(t, 3)
	core1, core2 := cores[0], cores[1]
	status := func(s *atolltest.Server) map[string]any {
		t.Helper()
		code, st := s.API("GET", "/v1/status", token, "", nil)
		if code != 200 {
			t.Fatalf("%s: GET /v1/status: %d %v", s.ID, code, st)
		}
		return st
	}
	for deadline := time.Now().Add(time.Minute); status(core1)["feature_level"].(float64) < atoll.LevelDeployBase; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the cluster never reached feature level %d", atoll.LevelDeployBase)
		}
	}

	const count = 30
	dir := t.TempDir()
	files := map[string]string{}
	for i := range count {
		files[fmt.Sprintf("p/%d.html", i)] = strings.Repeat(fmt.Sprintf("<p class=\"row\">page %d, a line of text</p>\n", i), 200+i)
	}
	writeTree(t, dir, files)
	core2.MustCLI("site", "create", "once")
	core2.MustCLI("deploy", dir, "--site", "once")

	for _, s := range cores {
		for name, body := range files {
			resp, got := s.Get("GET", "once.localhost", "/"+name, "Accept-Encoding", "br, gzip")
			ce := resp.Header.Get("Content-Encoding")
			if ce == "" {
				t.Errorf("%s /%s: answered uncompressed to a client accepting br and gzip", s.ID, name)
				continue
			}
			if dec, err := atolltest.Decode(ce, []byte(got)); err != nil || string(dec) != body {
				t.Errorf("%s /%s: %s body does not decode to the file (%v)", s.ID, name, ce, err)
			}
		}
	}

	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		pending := 0.0
		for _, s := range cores {
			pending += status(s)["compress_pending"].(float64)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v blobs still without variants after 2 minutes", pending)
		}
	}
	var compressed, received float64
	for _, s := range cores {
		st := status(s)
		c, r := st["compressed"].(float64), st["variants_received"].(float64)
		if c >= count || c+r != count {
			t.Errorf("%s compressed %v blobs and received the variants of %v; want fewer than %d compressed, %d in all", s.ID, c, r, count, count)
		}
		compressed += c
		received += r
	}
	if compressed != count || received != 2*count {
		t.Errorf("the nodes compressed %v blobs and received %v, want %d and %d", compressed, received, count, 2*count)
	}
	for _, body := range files {
		h := atolltest.SHA256Hex(body)
		for _, ext := range []string{".br", ".zst", ".gz"} {
			want := readVariant(t, core1, h, ext)
			for _, s := range cores[1:] {
				if got := readVariant(t, s, h, ext); !bytes.Equal(got, want) {
					t.Errorf("blob %s%s differs between core1 and %s", h[:8], ext, s.ID)
				}
			}
		}
	}
}

// readVariant reads a variant file from a node's data dir.
func readVariant(t *testing.T, s *atolltest.Server, hash, ext string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Data, "blobs", hash[:2], hash+ext))
	if err != nil {
		t.Fatalf("%s: %v", s.ID, err)
	}
	return b
}
