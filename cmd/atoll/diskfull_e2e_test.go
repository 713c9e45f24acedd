package main

import (
	"bytes"
	"crypto/rand"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/atoll-hosting/atoll/atolltest"
)

// tempFiles lists what writes in progress leave under the data dir: files
// in the blob store's and the upload spool's temp folders, and anything
// named like a temp file elsewhere.
func tempFiles(t *testing.T, data string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(data, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(data, p)
		rel = filepath.ToSlash(rel)
		name := d.Name()
		inTmp := strings.HasPrefix(rel, "tmp/") || strings.HasPrefix(rel, "blobs/tmp/")
		tempName := strings.HasPrefix(name, "put-") || strings.HasPrefix(name, "import-") ||
			strings.HasPrefix(name, "variant-") || strings.HasPrefix(name, "atoll-upload-") || strings.Contains(name, ".tmp")
		if !d.IsDir() && (inTmp || tempName) {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// putBlob uploads content through the API and returns the status and
// error message.
func putBlob(t *testing.T, s *atolltest.Server, content []byte) (int, string) {
	t.Helper()
	status, body := s.API("PUT", "/v1/blobs/"+atolltest.SHA256Hex(content), s.Token(), "", bytes.NewReader(content))
	msg, _ := body["error"].(string)
	return status, msg
}

// TestDiskFullEndToEnd runs a node whose free space is below its reserve
// (--min-free larger than any disk): uploads fail with 507 and a one-line
// error about disk space, nothing half-written stays, the published site
// is still served; with a normal reserve the same deploy goes through.
func TestDiskFullEndToEnd(t *testing.T) {
	s := newServer(t)
	s.Start()
	site := t.TempDir()
	writeTree(t, site, map[string]string{"index.html": "<h1>v1</h1>"})
	s.MustCLI("site", "create", "blog")
	s.MustCLI("deploy", site, "--site", "blog")

	s.Kill(syscall.SIGTERM)
	s.Flags = []string{"--min-free", "1048576TiB"}
	s.Start()
	big := make([]byte, 300<<10)
	rand.Read(big)
	writeTree(t, site, map[string]string{"index.html": "<h1>v2</h1>", "photo.bin": string(big)})
	if errOut := s.FailCLI("deploy", site, "--site", "blog"); !strings.Contains(errOut, "disk space") {
		t.Errorf("deploy on a full node: stderr %q, want a line about disk space", errOut)
	}
	if status, msg := putBlob(t, s, big); status != http.StatusInsufficientStorage || !strings.Contains(msg, "disk space") {
		t.Errorf("PUT blob on a full node: %d %q, want 507 about disk space", status, msg)
	}
	status, body := s.API("POST", "/v1/sites/blog/deploys?publish=true", s.Token(), "application/x-tar",
		bytes.NewReader(atolltest.Tar(map[string]string{"index.html": "<h1>from tar</h1>", "photo.bin": string(big)})))
	if msg, _ := body["error"].(string); status != http.StatusInsufficientStorage || !strings.Contains(msg, "disk space") {
		t.Errorf("tar upload on a full node: %d %v, want 507 about disk space", status, body)
	}
	if left := tempFiles(t, s.Data); len(left) != 0 {
		t.Errorf("temp files left after refused uploads: %v", left)
	}
	if resp, got := s.Get("GET", "blog.localhost", "/"); resp.StatusCode != 200 || got != "<h1>v1</h1>" {
		t.Errorf("published site on a full node: %d %q, want v1", resp.StatusCode, got)
	}
	if resp, _ := s.Get("GET", "blog.localhost", "/photo.bin"); resp.StatusCode != 404 {
		t.Errorf("a refused file is served: %d", resp.StatusCode)
	}

	// Space returns: the same deploy succeeds.
	s.Kill(syscall.SIGTERM)
	s.Flags = nil
	s.Start()
	s.MustCLI("deploy", site, "--site", "blog")
	if _, got := s.Get("GET", "blog.localhost", "/"); got != "<h1>v2</h1>" {
		t.Errorf("after recovery: got %q, want v2", got)
	}
	if _, got := s.Get("GET", "blog.localhost", "/photo.bin"); got != string(big) {
		t.Errorf("after recovery: photo.bin is %d bytes, want the uploaded %d", len(got), len(big))
	}
}

// TestRealDiskFullEndToEnd puts the blob store on a small tmpfs and fills
// it: the upload fails with ENOSPC turned into 507, the temp files go, the
// site keeps serving, and once the filler is removed the deploy succeeds
// with no restart. Needs root to mount; skipped otherwise.
func TestRealDiskFullEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	s := newServer(t)
	blobs := filepath.Join(s.Data, "blobs")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", blobs).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", blobs).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", blobs, err, out)
		}
	})
	s.Flags = []string{"--min-free", "0"}
	s.Start() // after the umount cleanup: it is killed first

	site := t.TempDir()
	writeTree(t, site, map[string]string{"index.html": "<h1>v1</h1>"})
	s.MustCLI("site", "create", "blog")
	s.MustCLI("deploy", site, "--site", "blog")

	var st syscall.Statfs_t
	if err := syscall.Statfs(blobs, &st); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(blobs, "filler")
	if err := os.WriteFile(filler, make([]byte, int64(st.Bavail)*int64(st.Bsize)-(256<<10)), 0o600); err != nil {
		t.Fatalf("fill the tmpfs: %v", err)
	}
	big := make([]byte, 1<<20)
	rand.Read(big)
	writeTree(t, site, map[string]string{"index.html": "<h1>v2</h1>", "photo.bin": string(big)})
	if errOut := s.FailCLI("deploy", site, "--site", "blog"); !strings.Contains(errOut, "disk space") {
		t.Errorf("deploy on a full disk: stderr %q, want a line about disk space", errOut)
	}
	if status, msg := putBlob(t, s, big); status != http.StatusInsufficientStorage || !strings.Contains(msg, "no space left") {
		t.Errorf("PUT blob on a full disk: %d %q, want 507 saying no space is left", status, msg)
	}
	if left := tempFiles(t, s.Data); len(left) != 0 {
		t.Errorf("temp files left on the full disk: %v", left)
	}
	if _, got := s.Get("GET", "blog.localhost", "/"); got != "<h1>v1</h1>" {
		t.Errorf("published site on a full disk: got %q, want v1", got)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s.MustCLI("deploy", site, "--site", "blog")
	if _, got := s.Get("GET", "blog.localhost", "/photo.bin"); got != string(big) {
		t.Errorf("once space returned: photo.bin is %d bytes, want %d", len(got), len(big))
	}
}
