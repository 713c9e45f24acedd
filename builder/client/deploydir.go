package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/internal/ctxio"
	"github.com/atoll-hosting/atoll/internal/osfile"
)

// DefaultConcurrency is how many files DeployDir hashes or uploads at once
// unless DeployOptions says otherwise.
const DefaultConcurrency = 8

// DeployOptions tunes DeployDir.
type DeployOptions struct {
	// Publish makes the deploy live once uploaded; otherwise it is only
	// finalized (ready, reachable at its preview URL).
	Publish bool
	// Message, if set, is recorded with the deploy (atoll.CheckMessage;
	// the cluster must be at atoll.LevelFeatureLevels).
	Message string
	// Concurrency bounds parallel hashing and uploads; 0 means
	// DefaultConcurrency.
	Concurrency int
	// Progress, if set, is called after each file is hashed and after each
	// blob is uploaded, never concurrently with itself.
	Progress func(Progress)
	// HashCacheDir, if set, is a folder where DeployDir remembers the
	// hashes of the files it deployed, by size, mtime, ctime and inode, so
	// that a redeploy reads only the files that changed (hashcache.go; the
	// CLI uses DefaultHashCacheDir). A cache that cannot be read or written
	// is ignored. Empty: every file is hashed every time.
	HashCacheDir string
}

// Progress phases.
const (
	PhaseHash   = "hash"   // hashing local files
	PhaseUpload = "upload" // uploading the blobs the cluster lacks
)

// Progress reports how far DeployDir is within a phase. In PhaseHash the
// totals cover every file; in PhaseUpload only the blobs to upload.
type Progress struct {
	Phase      string
	Files      int   // done so far
	FilesTotal int   // to do in this phase
	Bytes      int64 // done so far
	BytesTotal int64 // to do in this phase
}

// localFile is a file of the directory being deployed.
type localFile struct {
	path    string // manifest path, "/a/b.html"
	disk    string // where to read it
	size    int64
	hash    string
	stamp   fileStamp // for the hash cache
	stampOK bool
}

// DeployDir deploys the files under dir to site: it hashes every file
// (streaming, Concurrency at a time), sends the manifest, uploads only the
// blobs the cluster does not hold yet, then publishes the deploy (or, with
// !opt.Publish, finalizes it). It returns the final deploy, whose Required
// lists the blobs this call uploaded.
//
// Which files: regular files under dir, with paths relative to dir and
// forward slashes. Paths atoll.Published refuses are left out and counted
// in the answer's Skipped: names starting with ".", files and whole
// directories alike (.git, .env, .DS_Store), except ".well-known", which the
// web needs; the tar upload applies the same rule. Symbolic links to directories are not followed (no loops, no
// surprise trees). Symbolic links to files are followed when the target is
// inside dir (a build tool's dedup links) and refused with an error when it
// is outside, so a deploy never publishes a file from elsewhere on the
// machine. Other kinds of files (sockets, devices) are skipped.
//
// A failed upload is retried once, on the next node listed when its node
// cannot be reached. A publish or finalize refused with 409 because blobs
// uploaded a moment ago are no longer counted (the nodes that acknowledged
// them stopped) uploads those blobs again, once, and repeats the call. If a
// file changes between hashing and upload the server refuses it (hash
// mismatch) and DeployDir fails: run it again once the build is done.
func (c *Client) DeployDir(ctx context.Context, dir, site string, opt DeployOptions) (atoll.DeployResponse, error) {
	if opt.Concurrency <= 0 {
		opt.Concurrency = DefaultConcurrency
	}
	files, err := hashDir(ctx, dir, opt)
	if err != nil {
		return atoll.DeployResponse{}, err
	}
	created, err := c.createDeploy(ctx, site, files.createRequest(), opt.Message)
	if err != nil {
		return atoll.DeployResponse{}, fmt.Errorf("create deploy: %w", err)
	}
	if err := c.uploadRequired(ctx, created, files, opt); err != nil {
		return created, fmt.Errorf("deploy %s: %w", created.ID, err)
	}
	final, err := c.finish(ctx, created.ID, files, opt)
	if err != nil {
		return created, fmt.Errorf("deploy %s: %w", created.ID, err)
	}
	final.Required = created.Required
	final.Skipped = created.Skipped + files.skipped
	if len(final.Warnings) == 0 { // the rules were compiled when the create made it ready
		final.Warnings = created.Warnings
	}
	return final, nil
}

// dirFiles are the hashed files of one DeployDir.
type dirFiles struct {
	list    []localFile
	byHash  map[string]*localFile // the first file of each content
	skipped int                   // files left out, not atoll.Published
}

// hashDir lists the files under dir that DeployDir deploys (scanDir) and
// hashes them, opt.Concurrency at a time, reading only the files the hash
// cache does not know unchanged.
func hashDir(ctx context.Context, dir string, opt DeployOptions) (dirFiles, error) {
	files, skipped, err := scanDir(dir)
	if err != nil {
		return dirFiles{}, err
	}
	if len(files) == 0 {
		return dirFiles{}, fmt.Errorf("deploy %s: no files to deploy", dir)
	}
	var total int64
	for _, f := range files {
		total += f.size
	}
	hashed := &progress{fn: opt.Progress, Progress: Progress{Phase: PhaseHash, FilesTotal: len(files), BytesTotal: total}}
	root, _ := filepath.Abs(dir)
	cache := openHashCache(opt.HashCacheDir, root)
	err = forEach(ctx, opt.Concurrency, len(files), func(ctx context.Context, i int) error {
		return files[i].fillHash(ctx, cache, hashed)
	})
	if err != nil {
		return dirFiles{}, err
	}
	cache.save(root)
	byHash := make(map[string]*localFile, len(files))
	for i := range files {
		if _, ok := byHash[files[i].hash]; !ok {
			byHash[files[i].hash] = &files[i]
		}
	}
	return dirFiles{list: files, byHash: byHash, skipped: skipped}, nil
}

// fillHash sets f.hash (and f.size to the length read), from the cache when
// it knows the file unchanged, and counts the file in done.
func (f *localFile) fillHash(ctx context.Context, cache *hashCache, done *progress) error {
	if h, ok := cache.lookup(f.disk, f.stamp, f.stampOK); ok {
		f.hash = h
		done.add(f.size)
		return nil
	}
	h, n, err := hashFile(ctx, f.disk)
	if err != nil {
		return err
	}
	if n == f.size {
		cache.store(f.disk, f.stamp, f.stampOK, h)
	}
	f.hash, f.size = h, n
	done.add(n)
	return nil
}

// manifest is the deploy's path -> hash map.
func (d dirFiles) manifest() map[string]string {
	m := make(map[string]string, len(d.list))
	for _, f := range d.list {
		m[f.path] = f.hash
	}
	return m
}

// createRequest is the create's atoll.CreateDeployRequest, encoded
// straight from the sorted list: encoding/json sorts a map's keys through
// reflection, the largest cost of the create call in the CLI.
func (d dirFiles) createRequest() []byte {
	b := make([]byte, 0, 16+len(d.list)*100)
	b = append(b, `{"files":{`...)
	for i, f := range d.list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, f.path)
		b = appendJSONString(append(b, ':'), f.hash)
	}
	return append(b, "}}"...)
}

// appendJSONString appends s as a JSON string: as is between quotes when
// it is printable ASCII without a quote or a backslash, else as
// encoding/json writes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			enc, _ := json.Marshal(s) // a string always encodes
			return append(b, enc...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

// pick returns a file of each content in hashes, and the first hash no
// file has ("" when every one is there).
func (d dirFiles) pick(hashes []string) (files []*localFile, unknown string) {
	for _, h := range hashes {
		f, ok := d.byHash[h]
		if !ok {
			if unknown == "" {
				unknown = h
			}
			continue
		}
		files = append(files, f)
	}
	return files, unknown
}

// uploadRequired uploads the blobs created.Required lists, reporting
// PhaseUpload progress from the totals on.
func (c *Client) uploadRequired(ctx context.Context, created atoll.DeployResponse, files dirFiles, opt DeployOptions) error {
	todo, unknown := files.pick(created.Required)
	if unknown != "" {
		return fmt.Errorf("server requires blob %s that is not in the manifest", unknown)
	}
	var todoBytes int64
	for _, f := range todo {
		todoBytes += f.size
	}
	uploaded := &progress{fn: opt.Progress, Progress: Progress{Phase: PhaseUpload, FilesTotal: len(todo), BytesTotal: todoBytes}}
	uploaded.add(-1)
	return c.uploadAll(ctx, opt.Concurrency, todo, uploaded)
}

// finish publishes the deploy (or, without opt.Publish, finalizes it). A
// 409 listing blobs means copies acknowledged a moment ago cannot be
// counted any more (their nodes stopped): when they are all files of this
// deploy they are uploaded again, once, and the call repeated.
func (c *Client) finish(ctx context.Context, id string, files dirFiles, opt DeployOptions) (atoll.DeployResponse, error) {
	call := c.Finalize
	if opt.Publish {
		call = c.Publish
	}
	final, err := call(ctx, id)
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || len(ae.Missing) == 0 {
		return final, err
	}
	again, unknown := files.pick(ae.Missing)
	if unknown != "" {
		return final, err
	}
	if err := c.uploadAll(ctx, opt.Concurrency, again, nil); err != nil {
		return final, err
	}
	return call(ctx, id)
}

// uploadAll uploads files, concurrency requests at a time, counting them
// in done (which may be nil): small files in batches (planUploads), bigger
// ones each with its own PUT, and every file alone when the node does not
// take batches (an older version).
func (c *Client) uploadAll(ctx context.Context, concurrency int, files []*localFile, done *progress) error {
	units := planUploads(files)
	var noBatch atomic.Bool
	return forEach(ctx, concurrency, len(units), func(ctx context.Context, i int) error {
		u := units[i]
		if err := c.uploadUnit(ctx, u, &noBatch); err != nil {
			return err
		}
		if done != nil {
			for _, f := range u.files {
				done.add(f.size)
			}
		}
		return nil
	})
}

// uploadFile streams a file from disk, retrying once after a failure that a
// retry can fix (network, 5xx, 408, 429).
func (c *Client) uploadFile(ctx context.Context, f *localFile) error {
	try := func() error {
		fh, err := osfile.Open(f.disk)
		if err != nil {
			return err
		}
		defer fh.Close()
		_, err = c.UploadBlob(ctx, f.hash, fh, f.size)
		return err
	}
	err := try()
	if err == nil || !retryable(ctx, err) {
		return err
	}
	select {
	case <-time.After(250 * time.Millisecond):
	case <-ctx.Done():
		return err
	}
	return try()
}

func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, fs.ErrNotExist) {
		return false
	}
	var ae *Error
	if errors.As(err, &ae) {
		return ae.Status >= 500 || ae.Status == http.StatusRequestTimeout || ae.Status == http.StatusTooManyRequests
	}
	return true
}

// scanDir lists the files DeployDir deploys (see its documentation), sorted
// by path, with sizes from the file system; hashes come later. It also
// returns how many files it left out because their path is not
// atoll.Published.
func scanDir(dir string) ([]localFile, int, error) {
	root, err := deployRoot(dir)
	if err != nil {
		return nil, 0, err
	}
	var files []localFile
	skipped := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if path == root {
			return err
		}
		if rel, _ := filepath.Rel(root, path); !atoll.Published(filepath.ToSlash(rel)) {
			if err == nil && !d.IsDir() {
				skipped++ // as the tar upload counts: files, those under an unpublished directory too
			}
			return nil // an unreadable unpublished directory is not an error
		}
		if err != nil {
			return err
		}
		f, ok, err := scanEntry(root, dir, path, d)
		if ok {
			files = append(files, f)
		}
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	slices.SortFunc(files, func(a, b localFile) int { return strings.Compare(a.path, b.path) })
	return files, skipped, nil
}

// deployRoot returns the directory dir names, with every symbolic link on
// the way resolved (dir itself may be a link).
func deployRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	root, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("deploy %s: %w", dir, err)
	}
	if fi, err := os.Stat(root); err != nil {
		return "", err
	} else if !fi.IsDir() {
		return "", fmt.Errorf("deploy %s: not a directory", dir)
	}
	return root, nil
}

// scanEntry returns the file to deploy for an entry of the walk under root
// (the resolved dir), or false for one DeployDir skips: directories, links
// to anything but a regular file, other kinds of files.
func scanEntry(root, dir, path string, d fs.DirEntry) (localFile, bool, error) {
	var (
		fi  fs.FileInfo
		err error
	)
	switch {
	case d.IsDir():
		return localFile{}, false, nil
	case d.Type()&fs.ModeSymlink != 0:
		fi, err = followLink(root, dir, path)
	case d.Type().IsRegular():
		fi, err = d.Info()
	}
	if fi == nil || err != nil {
		return localFile{}, false, err
	}
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return localFile{}, false, err
	}
	p, err := atoll.CleanPath("/" + filepath.ToSlash(rel))
	if err != nil {
		return localFile{}, false, fmt.Errorf("cannot deploy %s: %w", path, err)
	}
	st, stOK := stampFrom(fi)
	return localFile{path: p, disk: path, size: fi.Size(), stamp: st, stampOK: stOK}, true, nil
}

// followLink returns what the link at path leads to when it is a regular
// file inside root, nil when it is anything else (directories are not
// followed, specials skipped), and an error when it leads outside root.
func followLink(root, dir, path string) (fs.FileInfo, error) {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("symlink %s: %w", path, err)
	}
	fi, err := os.Stat(target)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil
	}
	if rel, err := filepath.Rel(root, target); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, fmt.Errorf("symlink %s points outside %s (to %s); copy the file in instead", path, dir, target)
	}
	return fi, nil
}

// hashFile returns the SHA-256 (hex) and length of a file's content.
func hashFile(ctx context.Context, path string) (string, int64, error) {
	f, err := osfile.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxio.NewReader(ctx, f))
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// forEach runs fn(0..n-1) on at most workers goroutines. The first error
// cancels the rest and is returned.
func forEach(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// progress counts the work done in one phase and reports it to fn (which
// may be nil). add is safe for concurrent use and calls fn under the lock, so
// fn sees counts in order and never runs concurrently with itself.
type progress struct {
	mu sync.Mutex
	fn func(Progress)
	Progress
}

// add records one finished file of n bytes (n < 0: nothing done, just
// report the totals) and reports.
func (p *progress) add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n >= 0 {
		p.Files++
		p.Bytes += n
	}
	if p.fn != nil {
		p.fn(p.Progress)
	}
}

// DirPlan is what DeployDir would do with a folder: the deploy's files,
// and those whose content the cluster lacks and would be uploaded.
type DirPlan struct {
	Files    int                  `json:"files"`
	Bytes    int64                `json:"bytes"`
	Skipped  int                  `json:"skipped"`
	Upload   []string             `json:"upload"` // site paths, sorted; one file per missing content
	UpBytes  int64                `json:"upload_bytes"`
	Response atoll.DeployResponse `json:"-"`
}

// PlanDir hashes dir as DeployDir does and asks the server which contents
// it would have to upload (a create with dry_run=true), recording nothing.
func (c *Client) PlanDir(ctx context.Context, dir, site string, opt DeployOptions) (DirPlan, error) {
	if opt.Concurrency <= 0 {
		opt.Concurrency = DefaultConcurrency
	}
	files, err := hashDir(ctx, dir, opt)
	if err != nil {
		return DirPlan{}, err
	}
	var resp atoll.DeployResponse
	err = c.doJSON(ctx, "POST", "/v1/sites/"+url.PathEscape(site)+"/deploys?dry_run=true", atoll.CreateDeployRequest{Files: files.manifest()}, &resp)
	if err != nil {
		return DirPlan{}, fmt.Errorf("dry run: %w", err)
	}
	plan := DirPlan{Files: len(files.list), Skipped: resp.Skipped + files.skipped, Upload: []string{}}
	for _, f := range files.list {
		plan.Bytes += f.size
	}
	todo, unknown := files.pick(resp.Required)
	if unknown != "" {
		return plan, fmt.Errorf("server requires blob %s that is not in the manifest", unknown)
	}
	for _, f := range todo {
		plan.Upload = append(plan.Upload, f.path)
		plan.UpBytes += f.size
	}
	slices.Sort(plan.Upload)
	return plan, nil
}
