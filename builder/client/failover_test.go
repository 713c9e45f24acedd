package client_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"

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
