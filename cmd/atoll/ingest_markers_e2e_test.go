package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// TestDeployBatchMarkersEndToEnd deploys 60 text files through `atoll
// deploy` (one batch) to a node with its compressor off, so the pending
// markers stay: on disk each blob has its `<hash>.pending` marker, and
// every marker of the batch is the same file (hard links: one inode for
// the batch), with nothing left in the temp folder. Restarted with its
// compressor, the node makes every variant and removes every marker. The
// deploy's --cpu-profile writes a pprof file; one in a missing folder is
// refused with one line before anything is uploaded.
func TestDeployBatchMarkersEndToEnd(t *testing.T) {
	t.Parallel()
	s := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true, Flags: []string{"--compress-workers", "-1"}})
	s.Start()
	site := t.TempDir()
	files := map[string]string{}
	for i := range 60 {
		files[fmt.Sprintf("p/%02d.html", i)] = fmt.Sprintf("<p>page %d</p>%s", i, strings.Repeat("compressible text ", 100+i))
	}
	writeTree(t, site, files)
	s.MustCLI("site", "create", "marks")

	missing := filepath.Join(t.TempDir(), "no-such-folder", "cpu.pprof")
	errOut := s.FailCLI("deploy", site, "--site", "marks", "--cpu-profile", missing)
	if !strings.Contains(errOut, "--cpu-profile") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("deploy with --cpu-profile in a missing folder said %q, want one line naming the flag", errOut)
	}

	prof := filepath.Join(t.TempDir(), "cpu.pprof")
	out := s.MustCLI("deploy", site, "--site", "marks", "--cpu-profile", prof)
	if !strings.Contains(out, "60 uploaded") {
		t.Fatalf("deploy:\n%s\nwant 60 uploaded", out)
	}
	if b, err := os.ReadFile(prof); err != nil || !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Errorf("--cpu-profile file: %d bytes (err %v), want a gzip-compressed pprof profile", len(b), err)
	}

	blobs := filepath.Join(s.Data, "blobs")
	markers, err := filepath.Glob(filepath.Join(blobs, "??", "*.pending"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(markers), len(files); got != want {
		t.Fatalf("%d pending markers on disk, want %d (one per blob, compressor off)", got, want)
	}
	first, err := os.Stat(markers[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range markers[1:] {
		if fi, err := os.Stat(m); err != nil || !os.SameFile(first, fi) {
			t.Fatalf("marker %s is not a link to the batch's one marker file (err %v)", filepath.Base(m), err)
		}
	}
	if left, _ := os.ReadDir(filepath.Join(blobs, "temp")); len(left) != 0 {
		t.Errorf("temp folder after the deploy holds %d files", len(left))
	}

	restartCompressing(t, s)
	if left, _ := filepath.Glob(filepath.Join(blobs, "??", "*.pending")); len(left) != 0 {
		t.Errorf("%d markers left once every blob is compressed", len(left))
	}
	variants, _ := filepath.Glob(filepath.Join(blobs, "??", "*.br"))
	if len(variants) != len(files) {
		t.Errorf("%d brotli variants, want %d", len(variants), len(files))
	}
	resp, _ := s.Get("GET", "marks.localhost", "/p/07.html", "Accept-Encoding", "br")
	checkAnswer(t, resp, "", 200, "", map[string]string{"Content-Encoding": "br"})
}

// restartCompressing restarts s without its flags (so with its compressor
// on, where a test started it with --compress-workers -1) and waits until
// it has no blob left to compress.
func restartCompressing(t *testing.T, s *atolltest.Server) {
	t.Helper()
	s.Kill(15)
	s.Flags = nil
	s.Start()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, st := s.API("GET", "/v1/status", s.Token(), "", nil); st["compress_pending"] == float64(0) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("compress_pending never reached 0 with the compressor on")
		}
	}
}
