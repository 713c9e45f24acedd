package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
)

// TestEndToEndRedeployFromBase: at R=3 on three core nodes at feature
// level 3, a redeploy that changes one file, deletes one and adds one is
// recorded from the live deploy (its record names the base), and every
// node serves the new deploy byte-exact, the deleted file 404, with the
// deploy's file count and bytes those of the whole folder.
func TestEndToEndRedeployFromBase(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts three processes")
	}
	cores := startCores(t, 3)
	waitFeatureLevel(t, cores[0], atoll.LevelDeployBase)
	files := map[string]string{"index.html": "<h1>v1</h1>", "gone.html": "<p>deleted in v2</p>"}
	for i := range 300 {
		files[fmt.Sprintf("p/%03d.html", i)] = fmt.Sprintf("<p>page %d</p>%s", i, strings.Repeat("x", i))
	}
	dir := t.TempDir()
	writeTree(t, dir, files)
	cores[0].MustCLI("site", "create", "shop")
	cores[0].MustCLI("deploy", dir, "--site", "shop")
	v1 := liveDeploy(t, cores[0], "shop")
	if v1.Base != "" {
		t.Errorf("first deploy %+v has a base", v1)
	}

	files["index.html"] = "<h1>v2</h1>"
	delete(files, "gone.html")
	files["new/added.html"] = "<p>added in v2</p>"
	if err := os.Remove(filepath.Join(dir, "gone.html")); err != nil {
		t.Fatal(err)
	}
	writeTree(t, dir, files)
	out := cores[1].MustCLI("deploy", dir, "--site", "shop") // through a follower
	t.Logf("redeploy: %s", strings.TrimSpace(out))
	v2 := liveDeploy(t, cores[1], "shop")
	var bytes int64
	for _, body := range files {
		bytes += int64(len(body))
	}
	if v2.ID == v1.ID || v2.Base != v1.ID || v2.Files != len(files) || v2.Received != len(files) || v2.Bytes != bytes {
		t.Errorf("redeploy recorded %+v, want base %s, %d files, %d bytes", v2, v1.ID, len(files), bytes)
	}
	if !strings.Contains(out, "2 uploaded") {
		t.Errorf("redeploy output %q, want the two new contents uploaded", out)
	}

	for _, s := range cores {
		waitServes(t, s, "shop.localhost", "/index.html", files["index.html"])
		for name, want := range files {
			if resp, got := s.Get("GET", "shop.localhost", "/"+name); resp.StatusCode != http.StatusOK || got != want {
				t.Errorf("%s: /%s = %d %q, want %q", s.ID, name, resp.StatusCode, got, want)
			}
		}
		if resp, _ := s.Get("GET", "shop.localhost", "/gone.html"); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: deleted /gone.html answers %d, want 404", s.ID, resp.StatusCode)
		}
	}
}

// liveDeploy returns the live deploy of site, as `atoll deploys -o json`
// shows it.
func liveDeploy(t *testing.T, s *atolltest.Server, site string) atoll.Deploy {
	t.Helper()
	var list atoll.DeployList
	if err := json.Unmarshal([]byte(s.MustCLI("deploys", "--site", site, "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	for _, d := range list.Deploys {
		if d.State == atoll.StatePublished {
			return d.Deploy
		}
	}
	t.Fatalf("site %s has no live deploy: %+v", site, list.Deploys)
	return atoll.Deploy{}
}

// waitServes waits up to 10 s for s to serve want at host and path: a
// node applies a publish shortly after the node that made it.
func waitServes(t *testing.T, s *atolltest.Server, host, path, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, got := s.Get("GET", host, path); got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not serve %s%s = %q within 10s", s.ID, host, path, want)
		}
	}
}
