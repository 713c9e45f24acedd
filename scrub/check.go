package scrub

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"

	"github.com/atoll-hosting/atoll/blobstore"
)

// ErrClosed is returned by CheckLater once the Scrubber is closed.
var ErrClosed = errors.New("scrubber closed")

// Result is what checking one blob found.
type Result struct {
	Checked  bool // it was there and was read
	Unread   bool // reading it failed (not corruption, not cancellation)
	Corrupt  bool // it did not match its hash, and was quarantined
	Repaired bool // a healthy copy took its place
}

// Check verifies the local copy of hash now, without pacing, and replaces
// it when it is corrupt: for a copy found rotten outside a pass (say, by
// the blob store's background compression).
func (s *Scrubber) Check(ctx context.Context, hash string) Result {
	return s.check(ctx, hash, nil)
}

// CheckLater checks hashes in the background, at Rate: a peer received
// bytes of them from this node that did not match their hash. It returns
// ErrClosed once the Scrubber is closed.
func (s *Scrubber) CheckLater(hashes []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		pace := &pacer{ctx: s.ctx, rate: float64(s.cfg.Rate)}
		for _, h := range hashes {
			if res := s.check(s.ctx, h, pace.wait); res.Corrupt {
				s.log.Warn("scrub: a peer reported a corrupt copy, and it was", "blob", h, "repaired", res.Repaired)
			}
		}
	}()
	return nil
}

// check verifies the local copy of hash and replaces it when it is
// corrupt. Concurrent checks of one blob (a pass and a peer's report)
// share one run.
func (s *Scrubber) check(ctx context.Context, hash string, wait func(int) error) Result {
	v, _, _ := s.checks.Do(hash, func() (any, error) {
		return s.checkOnce(ctx, hash, wait), nil
	})
	return v.(Result)
}

func (s *Scrubber) checkOnce(ctx context.Context, hash string, wait func(int) error) Result {
	err := s.blobs.VerifyPaced(hash, wait)
	switch {
	case err == nil:
		return Result{Checked: true}
	case errors.Is(err, blobstore.ErrNotFound), ctx.Err() != nil:
		return Result{} // deleted since the walk listed it, or stopped
	case !errors.Is(err, blobstore.ErrHashMismatch) && !errors.Is(err, syscall.EIO):
		// Say, too many open files: nothing to conclude about the bytes.
		s.log.Warn("scrub: cannot read blob", "blob", hash, "err", err)
		return Result{Checked: true, Unread: true}
	}
	// Corrupt bytes, or a disk that cannot read them back (EIO).
	s.log.Error("scrub: corrupt copy found; quarantining and replacing it", "blob", hash, "err", err)
	return Result{Checked: true, Corrupt: true, Repaired: s.replace(ctx, hash)}
}

// replace takes this node's copy of hash out of service and puts a
// healthy one in its place. It reports whether the blob is stored again.
func (s *Scrubber) replace(ctx context.Context, hash string) bool {
	dir, err := s.blobs.Quarantine(hash)
	switch {
	case err == nil:
	case errors.Is(err, blobstore.ErrNotFound):
		// Gone meanwhile (collected as garbage, or evicted).
	case dir != "":
		s.log.Warn("scrub: quarantined, but not durably", "blob", hash, "err", err)
	default:
		// It could not be moved aside: delete it rather than serve it.
		s.log.Error("scrub: quarantine failed; deleting the corrupt copy", "blob", hash, "err", err)
		if err := s.blobs.Delete(hash); err != nil {
			s.log.Error("scrub: cannot take a corrupt copy out of service", "blob", hash, "err", err)
			return false
		}
	}
	s.edge.Invalidate(hash)
	defer s.edge.Invalidate(hash) // what the edge learned meanwhile was of the fresh copy; make sure
	ferr := s.holders.Fetch(ctx, hash)
	if ferr == nil {
		s.log.Info("scrub: corrupt copy replaced from another node", "blob", hash, "quarantine", dir)
		return true
	}
	if dir != "" && s.rebuild(ctx, hash, dir) {
		return true
	}
	s.log.Error("scrub: no healthy copy of a corrupt blob found; it stays quarantined", "blob", hash, "quarantine", dir, "err", ferr)
	return false
}

// rebuild stores hash again from its quarantined identity bytes in dir:
// no other node has it, and if only a compressed variant was damaged, the
// identity bytes are intact. Put hashes them again and refuses them if
// they are not.
func (s *Scrubber) rebuild(ctx context.Context, hash, dir string) bool {
	f, err := os.Open(filepath.Join(dir, hash))
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := s.blobs.Put(ctx, hash, f); err != nil {
		return false
	}
	s.log.Info("scrub: only a compressed variant was corrupt; blob rebuilt from its intact bytes", "blob", hash, "quarantine", dir)
	return true
}
