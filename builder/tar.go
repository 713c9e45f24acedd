package builder

import (
	"archive/tar"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/atoll-hosting/atoll"
)

// tarEntry is one regular file of an archive that passed scanTar.
type tarEntry struct {
	name string // the member name as in the archive
	atoll.File
	size int64
}

// tarLimits bounds what scanTar accepts.
type tarLimits struct {
	site         string // named in the errors of the site's own limits
	maxFiles     int    // the site's files per deploy
	maxFileBytes int64  // one member, decompressed
	maxTotal     int64  // all members, decompressed: a small gzip must not expand without end
	siteBytes    int64  // the site's bytes per deploy; 0: maxTotal alone
}

// tarLimits returns the limits of a tar upload to site.
func (a *API) tarLimits(site atoll.Site) tarLimits {
	lim := a.limits(site)
	return tarLimits{site: site.Name, maxFiles: lim.MaxFiles, maxFileBytes: a.cfg.MaxBlobBytes, maxTotal: a.cfg.MaxTarBytes, siteBytes: lim.MaxBytes}
}

// createTarDeploy serves a one-shot upload. The body is spooled to a temp
// file, the whole archive is checked (and every file hashed) before anything
// is stored, then the blobs are stored, the deploy recorded as ready and,
// when asked, published.
func (a *API) createTarDeploy(w http.ResponseWriter, r *http.Request, site atoll.Site, gzipped, publish bool, message string) {
	if r.ContentLength > a.cfg.MaxTarBytes {
		a.fail(w, r, errorf(http.StatusRequestEntityTooLarge, "archive larger than the limit of %d bytes", a.cfg.MaxTarBytes))
		return
	}
	if err := a.room(max(r.ContentLength, 0)); err != nil {
		a.fail(w, r, err)
		return
	}
	spool, err := os.CreateTemp(a.cfg.TempDir, "atoll-upload-*.tar")
	if err != nil {
		a.fail(w, r, fmt.Errorf("create spool file: %w", err))
		return
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	if err := spoolBody(spoolWriter{f: spool, room: a.room}, http.MaxBytesReader(w, r.Body, a.cfg.MaxTarBytes)); err != nil {
		a.fail(w, r, err)
		return
	}

	var entries []tarEntry
	var skipped int
	err = readArchive(spool, gzipped, func(tr io.Reader) error {
		var err error
		entries, skipped, err = scanTar(tr, a.tarLimits(site))
		return err
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}

	// The archive is sound: store the blobs the cluster lacks. A blob put
	// here and never referenced (the upload fails later) is garbage that
	// collection removes after its grace period.
	var total int64
	for _, e := range entries {
		total += e.size
	}
	err = readArchive(spool, gzipped, func(tr io.Reader) error {
		return a.ingestTar(r, tr, entries)
	})
	if err != nil {
		a.fail(w, r, err)
		return
	}

	files := make([]atoll.File, len(entries))
	for i, e := range entries {
		files[i] = e.File
	}
	slices.SortFunc(files, func(a, b atoll.File) int { return strings.Compare(a.Path, b.Path) })
	// The rules are compiled before the deploy is recorded, so that rules
	// that are refused leave no deploy behind.
	rules, err := a.compileRules(r.Context(), ruleFilesOf(files))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	d, _, err := a.recordDeploy(r.Context(), atoll.Deploy{Site: site.Name, Message: message}, files, checkDone(blobCheck{bytes: total, rules: &rules}), publish)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("deploy uploaded", "site", site.Name, "deploy", d.ID, "files", len(files), "skipped", skipped, "bytes", total, "published", publish)
	resp := a.deployResponse(d)
	resp.Skipped, resp.Warnings = skipped, rules.warnings
	WriteJSON(w, http.StatusCreated, resp)
}

// spoolWriteError marks a failure to write the spool file (a server-side
// problem) apart from a failure to read the body (the client's).
type spoolWriteError struct{ error }

func (e spoolWriteError) Unwrap() error { return e.error }

// SpoolCheckBytes is how much of a tar upload is spooled between two
// checks of the free space (Config.Room).
const SpoolCheckBytes = 4 << 20

// room asks Config.Room whether need more bytes fit in TempDir.
func (a *API) room(need int64) error {
	if a.cfg.Room == nil {
		return nil
	}
	return a.cfg.Room(a.cfg.TempDir, need)
}

// spoolWriter writes the spool file, asking room for the next
// SpoolCheckBytes before it writes past the last check.
type spoolWriter struct {
	f       *os.File
	room    func(need int64) error
	n       int64 // bytes written
	checked int64 // bytes room was asked for so far
}

func (w *spoolWriter) Write(p []byte) (int, error) {
	if w.n+int64(len(p)) > w.checked {
		need := int64(len(p)) + SpoolCheckBytes
		if err := w.room(need); err != nil {
			return 0, spoolWriteError{err}
		}
		w.checked = w.n + need
	}
	n, err := w.f.Write(p)
	w.n += int64(n)
	if err != nil {
		err = spoolWriteError{err}
	}
	return n, err
}

func spoolBody(w spoolWriter, body io.Reader) error {
	_, err := io.Copy(&w, body)
	var mbe *http.MaxBytesError
	var we spoolWriteError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "archive larger than the limit of %d bytes", mbe.Limit)
	case errors.As(err, &we):
		return fmt.Errorf("spool upload: %w", err)
	}
	return errorf(http.StatusBadRequest, "reading the upload failed: %v", err)
}

// readArchive runs fn on the tar stream of the spooled body from its start.
// For a gzipped body it then reads the compressed stream to its end, so a
// bad checksum or trailing garbage is caught even though tar stops reading
// at its end-of-archive marker.
func readArchive(f *os.File, gzipped bool, fn func(io.Reader) error) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewind spool: %w", err)
	}
	if !gzipped {
		return fn(f)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		return errorf(http.StatusBadRequest, "corrupt gzip stream: %v (was the body really gzipped?)", err)
	}
	defer zr.Close()
	if err := fn(zr); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return errorf(http.StatusBadRequest, "corrupt gzip stream: %v", err)
	}
	return nil
}

// scanTar reads a whole tar stream and returns its regular files, hashed, in
// archive order. It accepts only regular files and directories (pax and GNU
// long-name headers are handled by archive/tar; pax global headers are
// skipped). A leading "./" is stripped from names, then every name must pass
// atoll.CleanPath; absolute names, "..", duplicates (also "a" and "./a"),
// links, devices, FIFOs and sparse files are refused, naming the member.
// Regular files whose path is not atoll.Published are left out, unread,
// and counted (their size still counts against lim.maxTotal). Every error
// is an *apiError (400, or 413 past a limit), raised as soon as the stream
// crosses the limit.
func scanTar(r io.Reader, lim tarLimits) ([]tarEntry, int, error) {
	tr := tar.NewReader(r)
	var entries []tarEntry
	var total, published int64
	skipped := 0
	h := sha256.New()
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			return nil, 0, corrupt(err)
		}
		if skip, err := checkMemberType(hdr); err != nil {
			return nil, 0, err
		} else if skip {
			continue
		}
		p, err := memberPath(hdr.Name, false)
		if err != nil {
			return nil, 0, badMember(hdr, "%v", err)
		}
		if total += hdr.Size; total > lim.maxTotal {
			return nil, 0, errorf(http.StatusRequestEntityTooLarge, "archive holds more than %d bytes of files", lim.maxTotal)
		}
		if !atoll.Published(p) {
			skipped++
			continue
		}
		published += hdr.Size
		if lim.siteBytes > 0 && published > lim.siteBytes {
			return nil, 0, tooManyBytes(lim.site, lim.siteBytes)
		}
		if len(entries) >= lim.maxFiles {
			return nil, 0, tooManyFiles(lim.site, lim.maxFiles)
		}
		if hdr.Size > lim.maxFileBytes {
			return nil, 0, errorf(http.StatusRequestEntityTooLarge, "archive member %q is %d bytes, over the limit of %d per file",
				hdr.Name, hdr.Size, lim.maxFileBytes)
		}
		h.Reset()
		n, err := io.Copy(h, tr)
		if err != nil {
			return nil, 0, corrupt(err)
		}
		if n != hdr.Size { // archive/tar guarantees this; keep sizes honest regardless
			return nil, 0, corrupt(io.ErrUnexpectedEOF)
		}
		entries = append(entries, tarEntry{name: hdr.Name, File: atoll.File{Path: p, Hash: hex.EncodeToString(h.Sum(nil))}, size: n})
	}
	if len(entries) == 0 {
		if skipped > 0 {
			return nil, 0, errorf(http.StatusBadRequest, "the archive contains no files to publish: its %d files are all dot-files, which are not published", skipped)
		}
		return nil, 0, errorf(http.StatusBadRequest, "the archive contains no files")
	}
	if err := checkDuplicateMembers(entries); err != nil {
		return nil, 0, err
	}
	return entries, skipped, nil
}

// checkMemberType accepts regular files and refuses every type of member
// but directories (checked and skipped) and pax global headers (skipped).
func checkMemberType(hdr *tar.Header) (skip bool, err error) {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return true, nil
	case tar.TypeDir:
		if _, err := memberPath(hdr.Name, true); err != nil {
			return false, badMember(hdr, "%v", err)
		}
		return true, nil
	case tar.TypeReg:
		return false, nil
	case tar.TypeSymlink:
		return false, badMember(hdr, "is a symbolic link (to %q); only regular files and directories are allowed", hdr.Linkname)
	case tar.TypeLink:
		return false, badMember(hdr, "is a hard link (to %q); only regular files and directories are allowed", hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		return false, badMember(hdr, "is a device; only regular files and directories are allowed")
	case tar.TypeFifo:
		return false, badMember(hdr, "is a FIFO; only regular files and directories are allowed")
	case tar.TypeGNUSparse:
		return false, badMember(hdr, "is a sparse file; create the archive without --sparse")
	default:
		return false, badMember(hdr, "has unsupported type %q; only regular files and directories are allowed", hdr.Typeflag)
	}
}

// badMember is the 400 for a refused archive member.
func badMember(hdr *tar.Header, format string, args ...any) error {
	return errorf(http.StatusBadRequest, "archive member %q: %s", hdr.Name, fmt.Sprintf(format, args...))
}

// checkDuplicateMembers refuses two members that name the same file ("a"
// and "./a").
func checkDuplicateMembers(entries []tarEntry) error {
	sorted := slices.Clone(entries)
	slices.SortStableFunc(sorted, func(a, b tarEntry) int { return cmp.Compare(a.Path, b.Path) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Path == sorted[i-1].Path {
			return errorf(http.StatusBadRequest, "archive members %q and %q are the same file %q",
				sorted[i-1].name, sorted[i].name, sorted[i].Path)
		}
	}
	return nil
}

// memberPath normalizes a tar member name to a manifest path. Directories
// may name the archive root ("." or "./"), for which it returns "".
func memberPath(name string, dir bool) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute path; archive paths must be relative to the site root")
	}
	name = strings.TrimPrefix(name, "./")
	if dir {
		name = strings.TrimSuffix(name, "/")
		if name == "" || name == "." {
			return "", nil
		}
	}
	p, err := atoll.CleanPath(name)
	if err != nil {
		return "", errors.New(pathProblem(err))
	}
	return p, nil
}

// unpublished reports whether scanTar leaves the regular member name out.
func unpublished(name string) bool {
	p, err := memberPath(name, false)
	return err == nil && !atoll.Published(p)
}

func corrupt(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("read spool: %w", err) // our disk, not the client's archive
	}
	return errorf(http.StatusBadRequest, "corrupt archive: %v", err)
}

// ingestTar stores the blobs of entries (the result of scanTar over the same
// bytes) that the cluster does not hold yet, each once.
func (a *API) ingestTar(r *http.Request, rd io.Reader, entries []tarEntry) error {
	ctx := r.Context()
	tr := tar.NewReader(rd)
	hashes := make([]string, len(entries))
	for i, e := range entries {
		hashes[i] = e.Hash
	}
	stored, err := a.blobs.StatMany(ctx, hashes)
	if err != nil {
		return fmt.Errorf("check stored blobs: %w", err)
	}
	done := make(map[string]bool, len(entries))
	i := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			return corrupt(err)
		}
		if hdr.Typeflag != tar.TypeReg || unpublished(hdr.Name) {
			continue
		}
		if i >= len(entries) || entries[i].name != hdr.Name {
			return errors.New("ingest tar: archive changed between scan and ingest")
		}
		e := entries[i]
		i++
		if done[e.Hash] {
			continue
		}
		done[e.Hash] = true
		if _, ok := stored[e.Hash]; ok {
			continue
		}
		if _, err := a.blobs.Put(ctx, e.Hash, tr); err != nil {
			return fmt.Errorf("store %s (%s): %w", e.Path, e.Hash, err)
		}
	}
	if i != len(entries) {
		return errors.New("ingest tar: archive changed between scan and ingest")
	}
	return nil
}
