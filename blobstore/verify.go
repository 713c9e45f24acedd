package blobstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Verify re-reads a stored blob from disk: its identity bytes must hash to
// its name, and every variant must decompress to bytes with that same hash.
// It returns nil for an intact blob, an error wrapping ErrNotFound when the
// blob is not stored, and an error wrapping ErrHashMismatch (one per corrupt
// file, joined) when any file is corrupt; other errors are I/O failures that
// say nothing about the content.
//
// Verify only reports. The scrubber that calls it decides what to do with a
// corrupt blob: Quarantine it (so it is never served again) and fetch a
// healthy copy from another owner. Verify reads the whole blob and every
// variant, so it is for background scrubbing, never for the serving path.
func (s *Store) Verify(hash string) error {
	return s.VerifyPaced(hash, nil)
}

// VerifyPaced is Verify at a pace its caller sets: wait, unless nil, is
// called with the size of every chunk read from disk, before the next read,
// and may sleep to bound the read rate (a scrubber's bytes per second). An
// error from wait (say, the scrub was cancelled) stops the verification and
// is returned wrapped, as an I/O failure: it says nothing about the content.
func (s *Store) VerifyPaced(hash string, wait func(n int) error) error {
	if !validHash(hash) {
		return fmt.Errorf("verify blob %q: %w", hash, ErrInvalidHash)
	}
	base := s.path(hash)
	got, err := hashFile(base, "", wait)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("verify blob %s: %w", hash, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("verify blob %s: %w", hash, err)
	}
	var errs []error
	if got != hash {
		errs = append(errs, fmt.Errorf("verify blob %s: identity bytes hash to %s: %w", hash, got, ErrHashMismatch))
	}
	for _, e := range encodings {
		got, err := hashFile(base+e.ext, e.name, wait)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Not kept, or deleted meanwhile.
		case err != nil:
			errs = append(errs, fmt.Errorf("verify blob %s variant %s: %w", hash, e.name, err))
		case got != hash:
			errs = append(errs, fmt.Errorf("verify blob %s variant %s: decompresses to %s: %w", hash, e.name, got, ErrHashMismatch))
		}
	}
	return errors.Join(errs...)
}

// hashFile returns the SHA-256 of the file's bytes, decompressed first when
// encoding is not "". A stream that does not decompress is reported as an
// error wrapping ErrHashMismatch; a failure to read the file is returned as
// it is. wait, unless nil, paces the reads (see VerifyPaced).
func hashFile(path, encoding string, wait func(n int) error) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var src io.Reader = f
	if wait != nil {
		src = &pacedReader{r: f, wait: wait}
	}
	fr := &errTracker{r: src}
	var r io.Reader = fr
	if encoding != "" {
		d, err := newDecompressor(encoding, fr)
		if err != nil {
			if fr.err != nil {
				return "", fr.err
			}
			return "", fmt.Errorf("%w: %v", ErrHashMismatch, err)
		}
		defer d.Close()
		r = d
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		if fr.err != nil {
			return "", fr.err
		}
		return "", fmt.Errorf("%w: does not decompress: %v", ErrHashMismatch, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// errTracker remembers the first read error of r other than io.EOF, to tell
// an I/O failure from a corrupt stream once a decompressor has wrapped it.
type errTracker struct {
	r   io.Reader
	err error
}

func (t *errTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && t.err == nil {
		t.err = err
	}
	return n, err
}

// pacedReader calls wait with the size of each chunk it read, before the
// next read.
type pacedReader struct {
	r    io.Reader
	wait func(n int) error
	owed int
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.owed > 0 {
		if err := p.wait(p.owed); err != nil {
			return 0, err
		}
		p.owed = 0
	}
	n, err := p.r.Read(b)
	p.owed = n
	return n, err
}
