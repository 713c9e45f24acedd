package node

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/blobstore"
)

// prepare runs the data-dir part of Start on dir.
func prepare(dir string) (*Node, error) {
	n := &Node{cfg: Config{DataDir: dir, Version: "test"}, log: slog.New(slog.DiscardHandler)}
	return n, n.prepareDataDir()
}

// writeFiles creates files (path -> content; a path ending in "/" is a
// folder) under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDataDirUpgradeFromEveryState starts on a format-1 data dir as a kill
// at each point of its upgrade to format 2 would leave it: each opens
// cleanly, ends at format 2 with the node id kept, opens as a blob store,
// and stops a format-1 blob store (which makes blobs/tmp its temp folder).
func TestDataDirUpgradeFromEveryState(t *testing.T) {
	format1 := map[string]string{
		"node-id":         "core-1\n",
		"blobs/tmp/put-1": "half a blob", // a format-1 store's temp file
		"blobs/ab/":       "",
		"tmp/":            "",
	}
	states := []struct {
		name  string
		noTmp bool              // blobs/tmp was removed
		files map[string]string // written over format 1
	}{
		{"format 1", false, nil},
		{"blobs/tmp half removed", false, map[string]string{"blobs/tmp/": ""}},
		{"blobs/tmp removed, no guard", true, nil},
		{"guard's temp file written", true, map[string]string{"blobs/.tmp.tmp123": blobTempGuard[:10]}},
		{"guard written, no FORMAT", true, map[string]string{"blobs/tmp": blobTempGuard, "blobs/temp/": ""}},
		{"FORMAT's temp file written", true, map[string]string{"blobs/tmp": blobTempGuard, "blobs/temp/": "", ".FORMAT.tmp9": "2"}},
		{"upgraded", true, map[string]string{"blobs/tmp": blobTempGuard, "blobs/temp/": "", "FORMAT": "2\n"}},
	}
	for _, s := range states {
		t.Run(s.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, format1)
			if s.noTmp {
				if err := os.RemoveAll(filepath.Join(dir, "blobs", "tmp")); err != nil {
					t.Fatal(err)
				}
			}
			writeFiles(t, dir, s.files)

			n, err := prepare(dir)
			if err != nil {
				t.Fatalf("prepare: %v", err)
			}
			if n.cfg.ID != "core-1" {
				t.Errorf("node id = %q, want core-1", n.cfg.ID)
			}
			checkFormat2(t, dir)
			if _, err := prepare(dir); err != nil { // a second start changes nothing
				t.Fatalf("prepare again: %v", err)
			}
			checkFormat2(t, dir)
		})
	}
}

// checkFormat2 checks dir is a complete format-2 data dir.
func checkFormat2(t *testing.T, dir string) {
	t.Helper()
	if got, err := dataDirFormat(dir); err != nil || got != DataDirFormat {
		t.Errorf("format = %d, %v; want %d", got, err, DataDirFormat)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "blobs", "tmp")); err != nil || string(b) != blobTempGuard {
		t.Errorf("blobs/tmp = %q, %v; want the guard", b, err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*", ".*.tmp*"))
	top, _ := filepath.Glob(filepath.Join(dir, ".*.tmp*"))
	if left := append(leftovers, top...); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
	// What a format-1 binary does first with its blob store: it must fail.
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "tmp"), 0o755); err == nil {
		t.Error("a format-1 blob store could make blobs/tmp its temp folder")
	}
	cfg := blobstore.DefaultConfig()
	cfg.Dir, cfg.CompressWorkers, cfg.Logger = filepath.Join(dir, "blobs"), -1, slog.New(slog.DiscardHandler)
	s, err := blobstore.New(cfg)
	if err != nil {
		t.Fatalf("open the upgraded blob store: %v", err)
	}
	s.Close()
}

// TestNewDataDirIsCurrent: a first start writes the current format.
func TestNewDataDirIsCurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := prepare(dir); err != nil {
		t.Fatal(err)
	}
	checkFormat2(t, dir)
}

// TestDataDirRefused: a data dir of a newer format, or whose FORMAT is not
// a number, is refused with one line, and nothing in it changes (not even
// the leftovers of interrupted writes, which a start would remove).
func TestDataDirRefused(t *testing.T) {
	for _, tt := range []struct{ format, want string }{
		{"3\n", "data dir " + "%s is format 3, and this atoll (test) knows formats up to 2: run a newer atoll"},
		{"two\n", "not a format number"},
	} {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"FORMAT": tt.format, "node-id": "core-1\n", ".token.tmp5": "x", "tmp/spool-1": "y", "blobs/temp/put-1": "z"})
		before := tree(t, dir)
		_, err := prepare(dir)
		want := strings.ReplaceAll(tt.want, "%s", dir)
		if !errors.Is(err, ErrDataDirFormat) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("FORMAT %q: err = %v, want one line with %q", tt.format, err, want)
		}
		if after := tree(t, dir); after != before {
			t.Errorf("FORMAT %q: the data dir changed:\nbefore %s\nafter  %s", tt.format, before, after)
		}
	}
}

// tree is atolltest.Listing of dir.
func tree(t *testing.T, dir string) string {
	t.Helper()
	l, err := atolltest.Listing(dir)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
