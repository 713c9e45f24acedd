package client_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/builder/buildertest"
	"github.com/atoll-hosting/atoll/builder/client"
)

// deadURL returns the URL of a port nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// With the first node down, calls go to the next one listed, and the
// client sticks to it.
func TestClientTriesTheNextNode(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	c := client.New(deadURL(t)+", "+srv.URL+"/", buildertest.Token)
	if got, want := len(c.Endpoints), 2; got != want {
		t.Fatalf("Endpoints = %v, want %d", c.Endpoints, want)
	}
	if _, err := c.CreateSite(ctx(t), "blog", nil, 0); err != nil {
		t.Fatalf("CreateSite with the first node down: %v", err)
	}
	sites, err := c.Sites(ctx(t))
	if err != nil || len(sites) != 1 {
		t.Fatalf("Sites: %v %v, want the site created", sites, err)
	}
	// A whole deploy (JSON calls and streamed uploads) goes through.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>hi</h1>"), 0o644)
	if _, err := c.DeployDir(ctx(t), dir, "blog", client.DeployOptions{Publish: true}); err != nil {
		t.Fatalf("DeployDir after failing over: %v", err)
	}
}

func TestClientAllNodesDown(t *testing.T) {
	c := client.New(deadURL(t)+","+deadURL(t), buildertest.Token)
	if _, err := c.Sites(ctx(t)); err == nil {
		t.Fatal("Sites with every node down succeeded")
	}
}

// An upload from a file goes to the next node listed when the current one
// cannot be reached, like the JSON calls: a node that stops in the middle
// of a deploy must not fail the rest of its uploads.
func TestUploadFromAFileTriesTheNextNode(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	c := client.New(deadURL(t)+","+srv.URL, buildertest.Token)
	body := "uploaded through the second node"
	f := filepath.Join(t.TempDir(), "blob")
	os.WriteFile(f, []byte(body), 0o644)
	fh, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sum := sha256.Sum256([]byte(body))
	hash := hex.EncodeToString(sum[:])
	if _, err := c.UploadBlob(ctx(t), hash, fh, int64(len(body))); err != nil {
		t.Fatalf("UploadBlob with the first node down: %v", err)
	}
	if got := srv.Blobs.Hashes(); len(got) != 1 || got[0] != hash {
		t.Errorf("stored blobs %v, want %s", got, hash)
	}
}

// A node whose disk is full (507) is passed over like a dead one: the
// upload and the calls after it go to the next node listed; with every
// node full the 507 comes back.
func TestClientPassesOverAFullNode(t *testing.T) {
	full := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		builder.WriteError(w, http.StatusInsufficientStorage, "node n1: not enough disk space")
	}))
	t.Cleanup(full.Close)
	srv := buildertest.NewServer(t, builder.Config{})
	body := []byte("uploaded through the second node")
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])

	c := client.New(full.URL+","+srv.URL, buildertest.Token)
	if _, err := c.UploadBlob(ctx(t), hash, bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatalf("UploadBlob with the first node full: %v", err)
	}
	if got := srv.Blobs.Hashes(); len(got) != 1 || got[0] != hash {
		t.Errorf("stored blobs %v, want %s", got, hash)
	}
	if _, err := c.CreateSite(ctx(t), "blog", nil, 0); err != nil {
		t.Errorf("CreateSite after passing over the full node: %v", err)
	}

	c = client.New(full.URL+","+full.URL, buildertest.Token)
	var ae *client.Error
	if _, err := c.UploadBlob(ctx(t), hash, bytes.NewReader(body), int64(len(body))); !errors.As(err, &ae) || ae.Status != http.StatusInsufficientStorage {
		t.Errorf("UploadBlob with every node full: %v, want the 507", err)
	}
}

// A publish refused because a blob uploaded a moment ago is no longer
// counted (its copies' nodes stopped) uploads that blob again and
// publishes.
func TestDeployDirUploadsAgainWhatPublishFindsMissing(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	c := client.New(srv.URL, buildertest.Token)
	if _, err := c.CreateSite(ctx(t), "blog", nil, 0); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>lost once</h1>"), 0o644)
	os.WriteFile(filepath.Join(dir, "kept.css"), []byte("body{}"), 0o644)
	sum := sha256.Sum256([]byte("<h1>lost once</h1>"))
	lost := hex.EncodeToString(sum[:])
	var lostOnce bool
	d, err := c.DeployDir(ctx(t), dir, "blog", client.DeployOptions{Publish: true, Concurrency: 1, Progress: func(p client.Progress) {
		if p.Phase == client.PhaseUpload && p.Files == p.FilesTotal && !lostOnce {
			lostOnce = true
			if err := srv.Blobs.Lose(lost); err != nil {
				t.Error(err)
			}
		}
	}})
	if err != nil {
		t.Fatalf("DeployDir with a blob lost before the publish: %v", err)
	}
	if !lostOnce || d.State != atoll.StatePublished || srv.Blobs.Puts() != 3 {
		t.Errorf("lost=%v state=%s puts=%d; want the lost blob uploaded again and the deploy published", lostOnce, d.State, srv.Blobs.Puts())
	}
}
