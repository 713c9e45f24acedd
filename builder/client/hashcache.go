package client

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
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

// hashCacheHeader starts a cache file; its number changes when the file's
// format or meaning does. The file is text, one line per file:
//
//	atoll-hash-cache 2 <root, Go-quoted>
//	<sha256 hex> <size> <mtime ns> <ctime ns> <inode> <path on disk, Go-quoted>
//
// rather than JSON, whose decoding of 5,000 entries took a third of the
// CLI's CPU in a one-file redeploy. A file of another version (version 1
// was JSON) does not parse and is ignored: the next deploy hashes every
// file once and writes the new format.
const hashCacheHeader = "atoll-hash-cache 2 "

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
	Size  int64
	Mtime int64
	Ctime int64
	Ino   uint64
}

type hashEntry struct {
	fileStamp
	Hash string
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
	c.path = filepath.Join(dir, "hashes-"+hex.EncodeToString(sum[:12])+".txt")
	if b, err := os.ReadFile(c.path); err == nil {
		c.old, _ = parseHashCache(b, root)
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
	b := formatHashCache(root, c.new)
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

// formatHashCache encodes the entries of root's cache (see hashCacheHeader).
func formatHashCache(root string, files map[string]hashEntry) []byte {
	b := make([]byte, 0, 64+len(files)*160)
	b = strconv.AppendQuote(append(b, hashCacheHeader...), root)
	for disk, e := range files {
		b = append(append(b, '\n'), e.Hash...)
		b = strconv.AppendInt(append(b, ' '), e.Size, 10)
		b = strconv.AppendInt(append(b, ' '), e.Mtime, 10)
		b = strconv.AppendInt(append(b, ' '), e.Ctime, 10)
		b = strconv.AppendUint(append(b, ' '), e.Ino, 10)
		b = strconv.AppendQuote(append(b, ' '), disk)
	}
	return append(b, '\n')
}

// parseHashCache decodes a cache file of root; false when it is of another
// version or root, or malformed anywhere (a torn write included).
func parseHashCache(b []byte, root string) (map[string]hashEntry, bool) {
	head, rest, ok := bytes.Cut(b, []byte{'\n'})
	if !ok || string(head) != hashCacheHeader+strconv.Quote(root) {
		return nil, false
	}
	files := make(map[string]hashEntry, bytes.Count(rest, []byte{'\n'}))
	for len(rest) > 0 {
		var line []byte
		if line, rest, ok = bytes.Cut(rest, []byte{'\n'}); !ok {
			return nil, false
		}
		disk, e, ok := parseHashLine(string(line))
		if !ok {
			return nil, false
		}
		files[disk] = e
	}
	return files, true
}

// parseHashLine decodes one entry line of a cache file.
func parseHashLine(line string) (string, hashEntry, bool) {
	var f [5]string
	for i := range f {
		var ok bool
		if f[i], line, ok = strings.Cut(line, " "); !ok {
			return "", hashEntry{}, false
		}
	}
	var e hashEntry
	var errs [4]error
	e.Hash = f[0]
	e.Size, errs[0] = strconv.ParseInt(f[1], 10, 64)
	e.Mtime, errs[1] = strconv.ParseInt(f[2], 10, 64)
	e.Ctime, errs[2] = strconv.ParseInt(f[3], 10, 64)
	e.Ino, errs[3] = strconv.ParseUint(f[4], 10, 64)
	disk, err := strconv.Unquote(line)
	if err != nil || len(e.Hash) != 64 || errs != [4]error{} {
		return "", hashEntry{}, false
	}
	return disk, e, true
}
