package scrub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"

	"golang.org/x/sync/singleflight"

	"github.com/atoll-hosting/atoll/blobstore"
)

// Triggers of a pass, as atoll.ScrubStatus.Trigger reports them.
const (
	TriggerBackground = "background"
	TriggerRequest    = "request"
)

const (
	// resumeDelay: a background pass interrupted by a restart resumes
	// this long after the start, not at once, so a node that crash-loops
	// does not add a scrub to its troubles.
	resumeDelay = time.Minute
	// saveEvery: how often a background pass records how far it got.
	saveEvery = 30 * time.Second
)

// ErrConfig is returned by New for a Config it cannot run with.
var ErrConfig = errors.New("invalid scrub configuration")

// Config is what a Scrubber needs besides its dependencies.
type Config struct {
	Self      string        // this node's id, reported in the status
	StateFile string        // where the schedule survives restarts (<data>/scrub.json)
	Rate      int64         // bytes per second a pass reads at most
	Interval  time.Duration // a full background pass this long after the last one
	Logger    *slog.Logger  // nil: discard
}

// Blobs is the local blob store as the scrubber uses it
// (*blobstore.Store).
type Blobs interface {
	// Walk calls fn with every stored blob, in hash order.
	Walk(ctx context.Context, fn func(hash string) error) error
	// VerifyPaced checks a blob's files against its hash (ErrHashMismatch,
	// ErrNotFound), calling wait with the size of every chunk it reads.
	VerifyPaced(hash string, wait func(n int) error) error
	// Quarantine takes a blob out of service and returns the folder its
	// files were moved to.
	Quarantine(hash string) (string, error)
	Delete(hash string) error
	// Put stores a blob, checking its bytes against hash.
	Put(ctx context.Context, hash string, r io.Reader) (blobstore.Info, error)
}

// Holders brings a healthy copy of a blob from the other nodes that hold
// it into the local store, verified against the hash.
type Holders interface {
	Fetch(ctx context.Context, hash string) error
}

// Edge is the node's serving layer: it forgets what it knows of a blob
// (cached bytes, sizes, variants).
type Edge interface {
	Invalidate(hash string)
}

// Scrubber runs a node's scrub passes. Start the background schedule with
// Start; Close stops every pass and check it runs.
type Scrubber struct {
	cfg     Config
	log     *slog.Logger
	blobs   Blobs
	holders Holders
	edge    Edge

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	status atoll.ScrubStatus  // the running pass, or the last one
	stop   context.CancelFunc // cancels the running pass
	done   chan struct{}      // closed when the running pass ends; nil when none runs
	wake   chan struct{}      // makes the background loop read its schedule again

	checks singleflight.Group // one check of a blob at a time (passes and peer reports)
}

// New returns a Scrubber that runs no pass until Start or Request.
func New(cfg Config, blobs Blobs, holders Holders, edge Edge) (*Scrubber, error) {
	if cfg.Rate <= 0 || cfg.Interval <= 0 || cfg.StateFile == "" {
		return nil, fmt.Errorf("%w: rate and interval must be positive, the state file named", ErrConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Scrubber{
		cfg: cfg, log: cfg.Logger, blobs: blobs, holders: holders, edge: edge,
		status: atoll.ScrubStatus{ID: cfg.Self, Rate: cfg.Rate},
		wake:   make(chan struct{}, 1),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Start starts the background schedule.
func (s *Scrubber) Start() {
	s.wg.Add(1)
	go s.loop()
}

// Close stops the schedule and every pass and check, and waits for them.
// Nothing starts after it: a later Request returns a closed channel.
func (s *Scrubber) Close() {
	s.mu.Lock()
	s.cancel() // under mu: beginPassLocked and CheckLater see it before they add to wg
	s.mu.Unlock()
	s.wg.Wait()
}

// Status returns the running pass, or the last one.
func (s *Scrubber) Status() atoll.ScrubStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// loop starts a background pass when one is due: Interval after the last
// complete pass, or resumeDelay after the start when a pass was
// interrupted.
func (s *Scrubber) loop() {
	defer s.wg.Done()
	for {
		st := s.loadState()
		s.mu.Lock()
		s.status.LastPass = st.LastPass
		s.mu.Unlock()
		wait := time.Until(st.LastPass.Add(s.cfg.Interval))
		if st.Cursor != "" {
			wait = min(wait, resumeDelay)
		}
		timer := time.NewTimer(max(wait, 0))
		select {
		case <-s.ctx.Done():
			timer.Stop()
			return
		case <-s.wake:
			timer.Stop()
			continue
		case <-timer.C:
		}
		s.mu.Lock()
		done := s.done
		if done == nil {
			done = s.beginPassLocked(TriggerBackground, st.Cursor)
		}
		s.mu.Unlock()
		select {
		case <-s.ctx.Done():
			return
		case <-done:
		}
	}
}

// Request starts a pass for an operator and returns the channel closed
// when it ends. A pass started on request already is joined; a background
// pass is cancelled first (it records how far it got, and the request's
// pass, once complete, counts as the full pass it was doing).
func (s *Scrubber) Request() <-chan struct{} {
	for {
		s.mu.Lock()
		if s.done == nil {
			done := s.beginPassLocked(TriggerRequest, "")
			s.mu.Unlock()
			return done
		}
		if s.status.Trigger == TriggerRequest {
			done := s.done
			s.mu.Unlock()
			return done
		}
		stop, done := s.stop, s.done
		s.mu.Unlock()
		stop()
		select {
		case <-done:
		case <-s.ctx.Done():
			return done
		}
	}
}

// beginPassLocked starts a pass over the blobs after from (all of them for
// ""), with s.mu held, and returns the channel closed when it ends (at
// once when the Scrubber is closed).
func (s *Scrubber) beginPassLocked(trigger, from string) chan struct{} {
	done := make(chan struct{})
	if s.ctx.Err() != nil {
		close(done)
		return done
	}
	ctx, stop := context.WithCancel(s.ctx)
	s.stop, s.done = stop, done
	s.status = atoll.ScrubStatus{ID: s.cfg.Self, Running: true, Trigger: trigger, Started: time.Now().UTC(),
		Rate: s.cfg.Rate, LastPass: s.status.LastPass}
	lastPass := s.status.LastPass
	s.log.Info("scrub: pass started", "trigger", trigger, "rate", s.cfg.Rate, "resume_after", from)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer stop()
		err := s.pass(ctx, trigger, from, lastPass)
		s.endPass(trigger, err, done)
	}()
	return done
}

// endPass records the end of the running pass, closes its done channel and
// has the background loop read its schedule again.
func (s *Scrubber) endPass(trigger string, err error, done chan struct{}) {
	end := time.Now().UTC()
	s.mu.Lock()
	s.status.Running, s.status.Finished = false, end
	if err == nil {
		s.status.LastPass = end
		s.saveState(state{LastPass: end})
	} else {
		s.status.Error = err.Error()
	}
	st := s.status
	s.stop, s.done = nil, nil
	close(done)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	s.log.Info("scrub: pass ended", "trigger", trigger, "checked", st.Checked, "bytes", st.Bytes,
		"corrupt", st.Corrupt, "repaired", st.Repaired, "unread", st.Unread, "took", end.Sub(st.Started).Round(time.Millisecond), "err", err)
}

// pass checks every local blob after from, in hash order (Walk's), at
// Rate. A background pass records how far it got every saveEvery and when
// it stops early, so that it resumes there.
func (s *Scrubber) pass(ctx context.Context, trigger, from string, lastPass time.Time) error {
	pace := &pacer{ctx: ctx, rate: float64(s.cfg.Rate)}
	cursor, saved := from, time.Now()
	save := func() {
		if trigger == TriggerBackground && cursor != "" {
			s.saveState(state{LastPass: lastPass, Cursor: cursor})
		}
	}
	err := s.blobs.Walk(ctx, func(hash string) error {
		if hash <= from {
			return nil
		}
		res := s.check(ctx, hash, pace.wait)
		if err := ctx.Err(); err != nil {
			return err
		}
		s.count(res, pace.total)
		cursor = hash
		if time.Since(saved) >= saveEvery {
			save()
			saved = time.Now()
		}
		return nil
	})
	if err != nil {
		save()
	}
	return err
}

// count adds what checking one blob found to the running pass's status.
func (s *Scrubber) count(res Result, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &s.status
	st.Bytes = bytes
	if res.Checked {
		st.Checked++
	}
	if res.Unread {
		st.Unread++
	}
	if res.Corrupt {
		st.Corrupt++
	}
	if res.Repaired {
		st.Repaired++
	}
}
