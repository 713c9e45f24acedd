package main

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
)

// TestEndToEndCompactManifestsBesideRelease: a node at atoll.LevelCompactManifests or above
// holding the state release 7054800 wrote (its manifests in buckets)
// serves those sites, a new deploy of one of them made from its live
// deploy and a new site, whose manifests are compact (checked in fsm.db
// once the node stopped), before and after a restart.
func TestEndToEndCompactManifestsBesideRelease(t *testing.T) {
	t.Parallel()
	s, _ := releaseNode(t)
	s.MustCLI("snapshot", "restore", filepath.Join(releaseDir, "atoll.snap"))
	code, st := s.API("GET", "/v1/status", s.Token(), "", nil)
	if level, _ := st["feature_level"].(float64); code != 200 || level < atoll.LevelCompactManifests {
		t.Fatalf("status after the restore: %d %v, want feature level %d or above", code, st["feature_level"], atoll.LevelCompactManifests)
	}
	published := func(site string) string {
		t.Helper()
		code, m := s.API("GET", "/v1/sites/"+site, s.Token(), "", nil)
		id, _ := m["published"].(string)
		if code != 200 || id == "" {
			t.Fatalf("GET /v1/sites/%s: %d %v", site, code, m)
		}
		return id
	}
	released := published("docs")

	// blog again with one page changed and one added: made from the
	// release's live deploy, whose manifest is a bucket.
	blogTree := tree(t, filepath.Join(releaseDir, "sites", "blog"))
	for p := range blogTree {
		blogTree[p] += "changed\n"
		break
	}
	blogTree["/added.html"] = "<p>added after the raise</p>\n"
	freshTree := map[string]string{"/index.html": "<h1>fresh</h1>\n", "/a/b.css": "b{}\n"}
	for site, files := range map[string]map[string]string{"blog": blogTree, "fresh": freshTree} {
		dir := t.TempDir()
		if err := atolltest.WriteTree(dir, files); err != nil {
			t.Fatal(err)
		}
		if site == "fresh" {
			s.MustCLI("site", "create", site)
		}
		s.MustCLI("deploy", dir, "--site", site)
	}
	want := map[string]map[string]string{"blog": blogTree, "fresh": freshTree,
		"docs": tree(t, filepath.Join(releaseDir, "sites", "docs"))}
	serves := func(when string) {
		t.Helper()
		for site, files := range want {
			for path, body := range files {
				if resp, got := s.Get("GET", site+".localhost", path); resp.StatusCode != 200 || got != body {
					t.Errorf("%s: %s%s: %d %q, want %q", when, site, path, resp.StatusCode, got, body)
				}
			}
		}
	}
	serves("after the deploys")
	compact := []string{published("blog"), published("fresh")}

	s.Kill(syscall.SIGTERM)
	layouts := fsmLayouts(t, filepath.Join(s.Data, "raft", "fsm.db"), append(compact, released))
	if layouts[compact[0]] != "compact" || layouts[compact[1]] != "compact" || layouts[released] != "bucket" {
		t.Errorf("manifest layouts in fsm.db: %v, want %v compact and %s (the release's) a bucket", layouts, compact, released)
	}
	s.Start()
	serves("after a restart")
}

// fsmLayouts reads, in the FSM file at path (of a stopped node), the
// layout of each deploy's manifest: "compact" (a value of
// manifest_values), "bucket" (a bucket in manifests) or "" (raft/DESIGN.md,
// "FSM layout": a disk format).
func fsmLayouts(t *testing.T, path string, ids []string) map[string]string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]string{}
	err = db.View(func(tx *bolt.Tx) error {
		for _, id := range ids {
			switch {
			case tx.Bucket([]byte("manifest_values")) != nil && tx.Bucket([]byte("manifest_values")).Get([]byte(id)) != nil:
				out[id] = "compact"
			case tx.Bucket([]byte("manifests")).Bucket([]byte(id)) != nil:
				out[id] = "bucket"
			default:
				out[id] = ""
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
