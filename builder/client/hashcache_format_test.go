package client

import (
	"maps"
	"strings"
	"testing"
)

// TestHashCacheFormat: a cache file reads back as written, paths with
// spaces, quotes and newlines included, and a file of another root,
// version or torn anywhere is refused whole.
func TestHashCacheFormat(t *testing.T) {
	h := strings.Repeat("ab", 32)
	files := map[string]hashEntry{
		"/site/index.html":         {fileStamp{Size: 12, Mtime: 1700000000123456789, Ctime: 1700000000987654321, Ino: 42}, h},
		"/site/a b/\"q\"\n.html":   {fileStamp{Size: 0, Mtime: -1, Ctime: 2, Ino: 1 << 63}, h},
		"/site/\u00e9t\u00e9.html": {fileStamp{Size: 1 << 40, Mtime: 3, Ctime: 4, Ino: 5}, h},
	}
	b := formatHashCache("/site", files)
	got, ok := parseHashCache(b, "/site")
	if !ok || !maps.Equal(got, files) {
		t.Fatalf("read back %v (%v), want %v\nfile:\n%s", got, ok, files, b)
	}
	empty, ok := parseHashCache(formatHashCache("/site", nil), "/site")
	if !ok || len(empty) != 0 {
		t.Errorf("an empty cache reads back as %v %v", empty, ok)
	}
	for name, bad := range map[string][]byte{
		"another root":          b,
		"version 1 (JSON)":      []byte(`{"version":1,"root":"/site","files":{}}`),
		"torn in the last line": b[:len(b)-5],
		"a short hash":          []byte(hashCacheHeader + `"/site"` + "\nabc 1 2 3 4 \"/site/x\"\n"),
		"a bad number":          []byte(hashCacheHeader + `"/site"` + "\n" + h + " 1 x 3 4 \"/site/x\"\n"),
		"an unquoted path":      []byte(hashCacheHeader + `"/site"` + "\n" + h + " 1 2 3 4 /site/x\n"),
	} {
		root := "/site"
		if name == "another root" {
			root = "/other"
		}
		if got, ok := parseHashCache(bad, root); ok {
			t.Errorf("%s: parsed as %v, want refused", name, got)
		}
	}
}
