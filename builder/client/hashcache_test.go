package client_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/builder/client"
)

// TestDeployDirHashCache redeploys with the hash cache on: a file rewritten
// in place with the same size and its old mtime put back must still be
// seen as changed (its ctime moved), and the cache must never make a deploy
// publish stale content.
func TestDeployDirHashCache(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the hash cache is on only where inode and ctime are known")
	}
	t.Parallel()
	srv, c := setup(t)
	dir, cacheDir := t.TempDir(), t.TempDir()
	writeTree(t, dir, map[string]string{"index.html": "<h1>one</h1>", "a.css": "body{}", "b.js": "var b"})
	time.Sleep(2100 * time.Millisecond) // out of the racy window: cacheable
	opt := client.DeployOptions{Publish: true, HashCacheDir: cacheDir}

	d1, err := c.DeployDir(ctx(t), dir, "demo", opt)
	if err != nil {
		t.Fatalf("first DeployDir: %v", err)
	}
	if got, want := len(d1.Required), 3; got != want {
		t.Fatalf("first deploy uploaded %d blobs, want %d", got, want)
	}
	if entries, _ := os.ReadDir(cacheDir); len(entries) != 1 {
		t.Fatalf("cache folder holds %d files, want 1", len(entries))
	}

	// Same size, mtime restored: only the ctime tells.
	p := filepath.Join(dir, "index.html")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("<h1>two</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	d2, err := c.DeployDir(ctx(t), dir, "demo", opt)
	if err != nil {
		t.Fatalf("second DeployDir: %v", err)
	}
	if got := manifestOf(t, srv, d2.ID)["/index.html"]; got != sha("<h1>two</h1>") {
		t.Errorf("after an in-place rewrite the manifest has %s, want the new content's hash", got)
	}

	// A corrupt cache file is ignored.
	entries, _ := os.ReadDir(cacheDir)
	if err := os.WriteFile(filepath.Join(cacheDir, entries[0].Name()), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	d3, err := c.DeployDir(ctx(t), dir, "demo", opt)
	if err != nil {
		t.Fatalf("DeployDir with a corrupt cache: %v", err)
	}
	if got := manifestOf(t, srv, d3.ID)["/a.css"]; got != sha("body{}") {
		t.Errorf("with a corrupt cache /a.css = %s", got)
	}

	// An unwritable cache folder costs nothing but the hashing.
	if _, err := c.DeployDir(ctx(t), dir, "demo", client.DeployOptions{HashCacheDir: filepath.Join(p, "not-a-dir")}); err != nil {
		t.Errorf("DeployDir with an unusable cache folder: %v", err)
	}
}
