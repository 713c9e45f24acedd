package client

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The hash cache spares DeployDir from reading every file of a site again
// on each deploy (200 MiB of SHA-256 for a 5,000-file site, most of a
// one-file redeploy): it remembers each file's hash under its stat stamp,
// like rsync's quick check or git's index.
//
// Safety: an entry is used only if the file's size, mtime (ns), ctime (ns)
// and inode all match what they were when it was hashed. Any write to the
// file changes its ctime, which no tool can set back, so a file changed in
// place or replaced is hashed again even if its mtime was restored. A file
// whose mtime or ctime is less than racyWindow before the hash started is
// not cached (a write within the file system's time granularity could
// leave the stamp unchanged: git's "racy" case). On systems where the
// inode and ctime are not available the cache is off. The cache file is
// written to a temp file and renamed; one that does not parse is ignored.
// One file per deployed folder; files unused for 30 days are removed.
// A cache that cannot be read or written only costs the hashing: it never
// fails a deploy. A stale entry (only if a change kept the size, both
// times and the inode) would deploy the content its hash names, the file's
// previous version: never another file's bytes, since the server refuses
// an upload whose bytes do not hash to its name.

// racyWindow: files modified this recently are hashed but not cached.
const racyWindow = 2 * time.Second

// hashCacheVersion changes when the file's format or meaning does.
const hashCacheVersion = 1

// DefaultHashCacheDir is where the CLI keeps its hash caches: the user's
// cache folder (os.UserCacheDir) + "/atoll", or "" when there is none.
func DefaultHashCacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "atoll")
}

// fileStamp is what identifies a version of a file without reading it.
type fileStamp struct {
	Size  int64  `json:"s"`
	Mtime int64  `json:"m"`
	Ctime int64  `json:"c"`
	Ino   uint64 `json:"i"`
}

type hashEntry struct {
	fileStamp
	Hash string `json:"h"`
}

type hashCacheFile struct {
	Version int                  `json:"version"`
	Root    string               `json:"root"`
	Files   map[string]hashEntry `json:"files"` // by path on disk
}

// hashCache is the cache of one deployed folder, loaded from and saved to
// one file in the cache folder.
type hashCache struct {
	path  string // "" when disabled
	start time.Time

	mu      sync.Mutex
	old     map[string]hashEntry
	new     map[string]hashEntry
	changed bool
}

// openHashCache loads the cache of root from dir; dir "" disables it.
func openHashCache(dir, root string) *hashCache {
	c := &hashCache{start: time.Now(), new: map[string]hashEntry{}}
	if dir == "" || !stampsAvailable {
		return c
	}
	sum := sha256.Sum256([]byte(root))
	c.path = filepath.Join(dir, "hashes-"+hex.EncodeToString(sum[:12])+".json")
	b, err := os.ReadFile(c.path)
	if err != nil {
		return c
	}
	var f hashCacheFile
	if json.Unmarshal(b, &f) == nil && f.Version == hashCacheVersion && f.Root == root {
		c.old = f.Files
	}
	return c
}

// lookup returns the cached hash of the file at disk, if its stamp still
// matches.
func (c *hashCache) lookup(disk string, st fileStamp, ok bool) (string, bool) {
	if c.path == "" || !ok {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, found := c.old[disk]
	if !found || e.fileStamp != st || len(e.Hash) != 64 {
		return "", false
	}
	c.new[disk] = e
	return e.Hash, true
}

// store records a hash just computed, unless the file is too recent.
func (c *hashCache) store(disk string, st fileStamp, ok bool, hash string) {
	if c.path == "" || !ok {
		return
	}
	limit := c.start.Add(-racyWindow).UnixNano()
	if st.Mtime >= limit || st.Ctime >= limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.new[disk] = hashEntry{fileStamp: st, Hash: hash}
	c.changed = true
}

// save writes the entries used or added by this deploy (so deleted files
// drop out), best effort.
func (c *hashCache) save(root string) {
	if c.path == "" || (!c.changed && len(c.new) == len(c.old)) {
		return
	}
	b, err := json.Marshal(hashCacheFile{Version: hashCacheVersion, Root: root, Files: c.new})
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.path), ".hashes-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return
	}
	if os.Rename(tmp.Name(), c.path) != nil {
		os.Remove(tmp.Name())
	}
	pruneHashCaches(filepath.Dir(c.path))
}

// hashCacheMaxAge: caches of folders not deployed for this long are
// removed (best effort), so that deploys of many temporary folders do
// not pile up files in the cache folder.
const hashCacheMaxAge = 30 * 24 * time.Hour

func pruneHashCaches(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "hashes-") && !strings.HasPrefix(e.Name(), ".hashes-") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > hashCacheMaxAge {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// stampFrom returns the stamp of fi; ok is false where the platform does
// not give inode and ctime.
func stampFrom(fi fs.FileInfo) (fileStamp, bool) {
	ino, ctime, ok := inodeAndCtime(fi)
	if !ok {
		return fileStamp{}, false
	}
	return fileStamp{Size: fi.Size(), Mtime: fi.ModTime().UnixNano(), Ctime: ctime, Ino: ino}, true
}
