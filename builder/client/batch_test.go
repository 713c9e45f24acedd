package client_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/builder/buildertest"
	"github.com/atoll-hosting/atoll/builder/client"
)

// batchSite is a folder of n small files and one over BatchFileMax.
func batchSite(t *testing.T, n int) (dir string, files map[string]string) {
	t.Helper()
	dir = t.TempDir()
	files = map[string]string{"big.bin": strings.Repeat("B", client.BatchFileMax+1)}
	for i := range n {
		files[fmt.Sprintf("p/%04d.html", i)] = fmt.Sprintf("<p>page %d</p>", i)
	}
	writeTree(t, dir, files)
	return dir, files
}

// countingProxy forwards to srv, counting the batches and the PUTs of
// blobs; with refuse not 0 it answers every batch with that status (404:
// a node from before batches; 507: a node below its disk reserve).
func countingProxy(t *testing.T, srv *buildertest.Server, refuse int) (*httptest.Server, func(string) int64) {
	t.Helper()
	u, _ := url.Parse(srv.URL)
	rp := httputil.NewSingleHostReverseProxy(u)
	var batches, puts atomic.Int64
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "POST" && r.URL.Path == "/v1/blobs":
			batches.Add(1)
			if refuse != 0 {
				builder.WriteError(w, refuse, "refused by the test")
				return
			}
		case r.Method == "PUT" && strings.HasPrefix(r.URL.Path, "/v1/blobs/"):
			puts.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p, func(what string) int64 {
		if what == "batch" {
			return batches.Load()
		}
		return puts.Load()
	}
}

func TestDeployDirUploadsInBatches(t *testing.T) {
	tests := []struct {
		name   string
		refuse int
		small  int // small files: 2,500 is more than BatchMaxBlobs (3 batches)
	}{
		{"batches", 0, 2500},
		{"a node without batches", http.StatusNotFound, 300},
		{"a full node", http.StatusInsufficientStorage, 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := setup(t)
			proxy, count := countingProxy(t, srv, tt.refuse)
			c := client.New(proxy.URL, buildertest.Token)
			dir, files := batchSite(t, tt.small)
			d, err := c.DeployDir(ctx(t), dir, "demo", client.DeployOptions{Publish: true})
			if err != nil {
				t.Fatalf("DeployDir: %v", err)
			}
			if d.State != "published" || d.Files != len(files) {
				t.Fatalf("deploy %s with %d files, want published with %d", d.State, d.Files, len(files))
			}
			for name, content := range files {
				if _, err := srv.Blobs.Stat(ctx(t), sha(content)); err != nil {
					t.Errorf("%s not stored: %v", name, err)
				}
			}
			batches, puts := count("batch"), count("put")
			switch tt.refuse {
			case 0:
				if batches != 3 || puts != 1 {
					t.Errorf("%d batches and %d PUTs, want 3 batches (2,500 small files, at most %d each) and 1 PUT (the big file)", batches, puts, client.BatchMaxBlobs)
				}
			case http.StatusNotFound:
				if batches == 0 || batches > client.DefaultConcurrency || puts != int64(len(files)) {
					t.Errorf("%d batches tried and %d PUTs, want the first batches refused, then one PUT per file (%d)", batches, puts, len(files))
				}
			default:
				if batches != 1 || puts != int64(len(files)) {
					t.Errorf("%d batches tried and %d PUTs, want the one batch tried once, then one PUT per file (%d)", batches, puts, len(files))
				}
			}
		})
	}
}

// opener returns the BatchBlob.Open of a file of a new folder holding
// files.
func opener(t *testing.T, files map[string]string) func(name string) func() (io.ReadCloser, error) {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, files)
	return func(name string) func() (io.ReadCloser, error) {
		return func() (io.ReadCloser, error) { return os.Open(filepath.Join(dir, name)) }
	}
}

func TestUploadBatchRefusedWhole(t *testing.T) {
	_, c := setup(t)
	open := opener(t, map[string]string{"a": "aaa", "b": "bbb"})
	_, err := c.UploadBatch(ctx(t), []client.BatchBlob{
		{Hash: sha("aaa"), Size: 3, Open: open("a")},
		{Hash: sha("not b"), Size: 3, Open: open("b")},
	})
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, sha("not b")) {
		t.Fatalf("UploadBatch with a wrong hash: %v, want a 400 naming it", err)
	}
}

// A file that shrinks between its hashing and its upload fails the batch
// with an error saying so, and no blob of the batch is stored.
func TestUploadBatchFileShrunk(t *testing.T) {
	_, c := setup(t)
	open := opener(t, map[string]string{"a": "aaa", "b": "bb"})
	_, err := c.UploadBatch(ctx(t), []client.BatchBlob{
		{Hash: sha("aaa"), Size: 3, Open: open("a")},
		{Hash: sha("bbb"), Size: 3, Open: open("b")}, // hashed as "bbb", now "bb"
	})
	if err == nil || !strings.Contains(err.Error(), "was the file changed during upload?") {
		t.Fatalf("UploadBatch of a shrunk file: %v, want it named as changed", err)
	}
	d, err := c.CreateDeploy(ctx(t), "demo", map[string]string{"/a": sha("aaa")})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Required; len(got) != 1 || got[0] != sha("aaa") {
		t.Errorf("blobs still required after the failed batch: %v, want [%s]", got, sha("aaa"))
	}
}
