package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/atoll-hosting/atoll"

	"golang.org/x/sync/singleflight"

	"github.com/atoll-hosting/atoll/atomicfile"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
)

// Scrub: every node re-reads the blobs it holds and checks them against
// their hash (blobstore.VerifyPaced: identity bytes and every decompressed
// variant), at most ScrubRate bytes per second so serving keeps the disk, a
// full pass every ScrubInterval, and on request (POST /v1/nodes/{id}/scrub,
// `atoll node scrub ID`), which pre-empts a background pass.
//
// A corrupt copy is
//  1. quarantined (blobstore.Quarantine): out of the serving path at once
//     (nobody can open it any more; its bytes are kept under
//     <data>/blobs/quarantine/ for an operator to look at);
//  2. forgotten by the edge (serve.Handler.Invalidate);
//  3. replaced: fetched from the other holders, owners first in placement
//     order, each transfer verified against the hash as it arrives; or,
//     when no other node has it and only a compressed variant was damaged,
//     stored again from its own identity bytes (Put re-hashes them).
//
// Between 1 and 3 a visitor's request for the file fetches it the same way
// (read-through), so it gets the healthy bytes or a 503, never the corrupt
// ones. Corruption is caught outside the scrubber too: a blob fetched from
// a peer is verified as it arrives (blobstore.Import), and the node that
// received bad bytes asks the sender to check its copy at once (POST
// /v1/peer/verify), so it heals without waiting for its next pass; serve
// checks small files against their hash when it loads them into memory.
//
// A background pass resumes after a restart where it stopped: the last blob
// it reached and the end of the last full pass are kept in
// <data>/scrub.json.

// Scrub triggers, as ScrubStatus.Trigger reports them.
const (
	scrubBackground = "background"
	scrubRequest    = "request"
)

const (
	// scrubResumeDelay: a background pass interrupted by a restart resumes
	// this long after the start, not at once, so a node that crash-loops
	// does not add a scrub to its troubles.
	scrubResumeDelay = time.Minute
	// scrubSaveEvery: how often a background pass records how far it got.
	scrubSaveEvery = 30 * time.Second
	// scrubBurst: the pacer lets reads run this far ahead of the rate
	// before it sleeps, so it does not sleep once per 32 KiB read.
	scrubBurst = 20 * time.Millisecond
	// scrubWaitDefault and scrubWaitMax bound how long POST
	// /v1/nodes/{id}/scrub waits for the pass to finish before answering
	// 202 with its progress (below the peer client's one-minute timeout,
	// since the call may be forwarded).
	scrubWaitDefault = 20 * time.Second
	scrubWaitMax     = 50 * time.Second
	// maxVerifyHashes bounds one POST /v1/peer/verify.
	maxVerifyHashes = 64
)

// scrubber is the scrub state of a node. The zero value is ready once
// startScrubber has run.
type scrubber struct {
	mu     sync.Mutex
	status atoll.ScrubStatus  // the running pass, or the last one
	cancel context.CancelFunc // cancels the running pass
	done   chan struct{}      // closed when the running pass ends; nil when none runs
	wake   chan struct{}      // makes the background loop read its schedule again

	checks singleflight.Group // one check of a blob at a time (passes and peer reports)
}

// scrubState is what <data>/scrub.json keeps across restarts.
type scrubState struct {
	LastPass time.Time `json:"last_pass"`        // end of the last complete pass
	Cursor   string    `json:"cursor,omitempty"` // last blob an unfinished background pass checked
}

func (n *Node) scrubStatePath() string { return filepath.Join(n.cfg.DataDir, "scrub.json") }

// loadScrubState reads scrub.json. A node without one (first start) counts
// its blobs as checked now: they were verified when they arrived.
func (n *Node) loadScrubState() scrubState {
	var st scrubState
	b, err := os.ReadFile(n.scrubStatePath())
	if err == nil && json.Unmarshal(b, &st) == nil && !st.LastPass.IsZero() {
		return st
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		n.log.Warn("scrub: read schedule; starting a new one", "err", err)
	}
	st = scrubState{LastPass: time.Now().UTC()}
	n.saveScrubState(st)
	return st
}

func (n *Node) saveScrubState(st scrubState) {
	b, _ := json.Marshal(st)
	if err := atomicfile.Write(n.scrubStatePath(), append(b, '\n'), 0o640); err != nil {
		n.log.Warn("scrub: save schedule", "err", err)
	}
}

// startScrubber starts the background scrub loop.
func (n *Node) startScrubber() {
	n.scrub.wake = make(chan struct{}, 1)
	n.scrub.status = atoll.ScrubStatus{ID: n.cfg.ID, Rate: n.cfg.ScrubRate}
	n.wg.Add(1)
	go n.scrubLoop()
}

// scrubLoop starts a background pass when one is due: ScrubInterval after
// the last complete pass, or scrubResumeDelay after the start when a pass
// was interrupted.
func (n *Node) scrubLoop() {
	defer n.wg.Done()
	s := &n.scrub
	for {
		st := n.loadScrubState()
		s.mu.Lock()
		s.status.LastPass = st.LastPass
		s.mu.Unlock()
		wait := time.Until(st.LastPass.Add(n.cfg.ScrubInterval))
		if st.Cursor != "" {
			wait = min(wait, scrubResumeDelay)
		}
		timer := time.NewTimer(max(wait, 0))
		select {
		case <-n.ctx.Done():
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
			done = n.beginPassLocked(scrubBackground, st.Cursor)
		}
		s.mu.Unlock()
		select {
		case <-n.ctx.Done():
			return
		case <-done:
		}
	}
}

// scrubOnRequest starts a pass for an operator and returns the channel
// closed when it ends. A pass started on request already is joined; a
// background pass is cancelled first (it records how far it got, and the
// request's pass, once complete, counts as the full pass it was doing).
func (n *Node) scrubOnRequest() <-chan struct{} {
	s := &n.scrub
	for {
		s.mu.Lock()
		if s.done == nil {
			done := n.beginPassLocked(scrubRequest, "")
			s.mu.Unlock()
			return done
		}
		if s.status.Trigger == scrubRequest {
			done := s.done
			s.mu.Unlock()
			return done
		}
		cancel, done := s.cancel, s.done
		s.mu.Unlock()
		cancel()
		select {
		case <-done:
		case <-n.ctx.Done():
			return done
		}
	}
}

// beginPassLocked starts a pass over the blobs after from (all of them for
// ""), with n.scrub.mu held, and returns the channel closed when it ends.
func (n *Node) beginPassLocked(trigger, from string) chan struct{} {
	s := &n.scrub
	ctx, cancel := context.WithCancel(n.ctx)
	done := make(chan struct{})
	s.cancel, s.done = cancel, done
	s.status = atoll.ScrubStatus{ID: n.cfg.ID, Running: true, Trigger: trigger, Started: time.Now().UTC(),
		Rate: n.cfg.ScrubRate, LastPass: s.status.LastPass}
	lastPass := s.status.LastPass
	n.log.Info("scrub: pass started", "trigger", trigger, "rate", n.cfg.ScrubRate, "resume_after", from)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer cancel()
		err := n.scrubPass(ctx, trigger, from, lastPass)
		end := time.Now().UTC()
		s.mu.Lock()
		s.status.Running, s.status.Finished = false, end
		if err == nil {
			s.status.LastPass = end
			n.saveScrubState(scrubState{LastPass: end})
		} else {
			s.status.Error = err.Error()
		}
		st := s.status
		s.cancel, s.done = nil, nil
		close(done)
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
		n.log.Info("scrub: pass ended", "trigger", trigger, "checked", st.Checked, "bytes", st.Bytes,
			"corrupt", st.Corrupt, "repaired", st.Repaired, "unread", st.Unread, "took", end.Sub(st.Started).Round(time.Millisecond), "err", err)
	}()
	return done
}

// scrubStatus returns the running or last pass.
func (n *Node) scrubStatus() atoll.ScrubStatus {
	n.scrub.mu.Lock()
	defer n.scrub.mu.Unlock()
	return n.scrub.status
}

// scrubPass checks every local blob after from, in hash order (Walk's), at
// ScrubRate. A background pass records how far it got every
// scrubSaveEvery and when it stops early, so that it resumes there.
func (n *Node) scrubPass(ctx context.Context, trigger, from string, lastPass time.Time) error {
	s := &n.scrub
	pace := &pacer{ctx: ctx, rate: float64(n.cfg.ScrubRate)}
	cursor, saved := from, time.Now()
	save := func() {
		if trigger == scrubBackground && cursor != "" {
			n.saveScrubState(scrubState{LastPass: lastPass, Cursor: cursor})
		}
	}
	err := n.blobs.Walk(ctx, func(hash string) error {
		if hash <= from {
			return nil
		}
		res := n.checkBlob(ctx, hash, pace.wait)
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		st := &s.status
		st.Bytes = pace.total
		if res.checked {
			st.Checked++
		}
		if res.unread {
			st.Unread++
		}
		if res.corrupt {
			st.Corrupt++
		}
		if res.repaired {
			st.Repaired++
		}
		s.mu.Unlock()
		cursor = hash
		if time.Since(saved) >= scrubSaveEvery {
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

// checkResult is what checking one blob found.
type checkResult struct {
	checked  bool // it was there and was read
	unread   bool // reading it failed (not corruption, not cancellation)
	corrupt  bool // it did not match its hash, and was quarantined
	repaired bool // a healthy copy took its place
}

// checkBlob verifies the local copy of hash and replaces it when it is
// corrupt. Concurrent checks of one blob (a pass and a peer's report)
// share one run.
func (n *Node) checkBlob(ctx context.Context, hash string, wait func(int) error) checkResult {
	v, _, _ := n.scrub.checks.Do(hash, func() (any, error) {
		return n.checkBlobOnce(ctx, hash, wait), nil
	})
	return v.(checkResult)
}

func (n *Node) checkBlobOnce(ctx context.Context, hash string, wait func(int) error) checkResult {
	err := n.blobs.VerifyPaced(hash, wait)
	switch {
	case err == nil:
		return checkResult{checked: true}
	case errors.Is(err, blobstore.ErrNotFound), ctx.Err() != nil:
		return checkResult{} // deleted since the walk listed it, or stopped
	case !errors.Is(err, blobstore.ErrHashMismatch) && !errors.Is(err, syscall.EIO):
		// Say, too many open files: nothing to conclude about the bytes.
		n.log.Warn("scrub: cannot read blob", "blob", hash, "err", err)
		return checkResult{checked: true, unread: true}
	}
	// Corrupt bytes, or a disk that cannot read them back (EIO).
	n.log.Error("scrub: corrupt copy found; quarantining and replacing it", "blob", hash, "err", err)
	return checkResult{checked: true, corrupt: true, repaired: n.replaceCorrupt(ctx, hash)}
}

// replaceCorrupt takes this node's copy of hash out of service and puts a
// healthy one in its place. It reports whether the blob is stored again.
func (n *Node) replaceCorrupt(ctx context.Context, hash string) bool {
	dir, err := n.blobs.Quarantine(hash)
	switch {
	case err == nil:
	case errors.Is(err, blobstore.ErrNotFound):
		// Gone meanwhile (collected as garbage, or evicted).
	case dir != "":
		n.log.Warn("scrub: quarantined, but not durably", "blob", hash, "err", err)
	default:
		// It could not be moved aside: delete it rather than serve it.
		n.log.Error("scrub: quarantine failed; deleting the corrupt copy", "blob", hash, "err", err)
		if err := n.blobs.Delete(hash); err != nil {
			n.log.Error("scrub: cannot take a corrupt copy out of service", "blob", hash, "err", err)
			return false
		}
	}
	n.invalidateEdge(hash)
	defer n.invalidateEdge(hash) // what the edge learned meanwhile was of the fresh copy; make sure
	_, ferr := n.fetch(ctx, hash)
	if ferr == nil {
		n.log.Info("scrub: corrupt copy replaced from another node", "blob", hash, "quarantine", dir)
		return true
	}
	if dir != "" {
		// No other node has it. If only a compressed variant was damaged,
		// the quarantined identity bytes are intact: Put hashes them again
		// and refuses them if they are not.
		if f, err := os.Open(filepath.Join(dir, hash)); err == nil {
			_, perr := n.blobs.Put(ctx, hash, f)
			f.Close()
			if perr == nil {
				n.log.Info("scrub: only a compressed variant was corrupt; blob rebuilt from its intact bytes", "blob", hash, "quarantine", dir)
				return true
			}
		}
	}
	n.log.Error("scrub: no healthy copy of a corrupt blob found; it stays quarantined", "blob", hash, "quarantine", dir, "err", ferr)
	return false
}

// pacer bounds a pass's reads to rate bytes per second.
type pacer struct {
	ctx   context.Context
	rate  float64
	next  time.Time // when the bytes read so far are paid for
	total int64
}

func (p *pacer) wait(n int) error {
	p.total += int64(n)
	now := time.Now()
	if p.next.Before(now) {
		p.next = now // idle time earns no credit
	}
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	if d := p.next.Sub(now); d > scrubBurst {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-p.ctx.Done():
		case <-t.C:
		}
	}
	return p.ctx.Err()
}

// reportCorrupt tells node src that the copy of hash it sent did not match
// the hash, so that it checks (and replaces) its copy now rather than at
// its next pass. Best effort, in the background.
func (n *Node) reportCorrupt(src atoll.Node, hash string) {
	if n.ctx.Err() != nil {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		defer cancel()
		err := n.peerJSON(ctx, http.MethodPost, src.APIAddr, "/v1/peer/verify", jsonBody(hashList{Hashes: []string{hash}}), nil)
		if err != nil {
			n.log.Warn("scrub: report a corrupt copy to its holder", "blob", hash, "node", src.ID, "err", err)
		}
	}()
}

func (n *Node) registerScrub(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	mux.Handle("POST /v1/nodes/{id}/scrub", auth(http.HandlerFunc(n.handleScrub)))
	mux.Handle("GET /v1/nodes/{id}/scrub", auth(http.HandlerFunc(n.handleScrub)))
	mux.Handle("POST /v1/peer/scrub", n.requirePeer(n.handlePeerScrub))
	mux.Handle("GET /v1/peer/scrub", n.requirePeer(n.handlePeerScrub))
	mux.Handle("POST /v1/peer/verify", n.requirePeer(n.handlePeerVerify))
}

// handleScrub serves POST (start a pass, wait up to ?wait=, default 20s)
// and GET (the running or last pass) of /v1/nodes/{id}/scrub, for this node
// or, through its peer endpoint, for another. 200 when the pass is over,
// 202 while it runs.
func (n *Node) handleScrub(w http.ResponseWriter, r *http.Request) {
	wait, err := scrubWait(r)
	if err != nil {
		builder.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	id := r.PathValue("id")
	if id == n.cfg.ID {
		n.serveScrub(w, r, wait)
		return
	}
	nd, ok := n.nodeByID(id)
	if !ok || nd.State == atoll.NodeRemoved {
		builder.WriteError(w, http.StatusNotFound, fmt.Sprintf("no node %q in the cluster", id))
		return
	}
	var st atoll.ScrubStatus
	path := "/v1/peer/scrub?wait=" + wait.String()
	if err := n.peerJSON(r.Context(), r.Method, nd.APIAddr, path, nil, &st); err != nil {
		var pe *peerError
		if errors.As(err, &pe) {
			builder.WriteError(w, pe.Status, fmt.Sprintf("node %s: %s", id, pe.Message))
			return
		}
		builder.WriteError(w, http.StatusBadGateway, fmt.Sprintf("node %s unreachable: %v", id, err))
		return
	}
	writeScrubStatus(w, st)
}

func (n *Node) handlePeerScrub(w http.ResponseWriter, r *http.Request) {
	wait, err := scrubWait(r)
	if err != nil {
		builder.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	n.serveScrub(w, r, wait)
}

func (n *Node) serveScrub(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	if r.Method == http.MethodPost {
		done := n.scrubOnRequest()
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		case <-r.Context().Done():
		}
	}
	writeScrubStatus(w, n.scrubStatus())
}

func writeScrubStatus(w http.ResponseWriter, st atoll.ScrubStatus) {
	status := http.StatusOK
	if st.Running {
		status = http.StatusAccepted
	}
	builder.WriteJSON(w, status, st)
}

func scrubWait(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return scrubWaitDefault, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("wait %s: want a duration such as 10s", strconv.Quote(v))
	}
	return min(d, scrubWaitMax), nil
}

// handlePeerVerify checks the given blobs now, in the background: a peer
// received bytes from this node that did not match their hash.
func (n *Node) handlePeerVerify(w http.ResponseWriter, r *http.Request) {
	hashes, ok := readHashList(w, r, maxVerifyHashes, "verify")
	if !ok {
		return
	}
	if n.ctx.Err() != nil {
		builder.WriteError(w, http.StatusServiceUnavailable, "node shutting down")
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		pace := &pacer{ctx: n.ctx, rate: float64(n.cfg.ScrubRate)}
		for _, h := range hashes {
			if res := n.checkBlob(n.ctx, h, pace.wait); res.corrupt {
				n.log.Warn("scrub: a peer reported a corrupt copy, and it was", "blob", h, "repaired", res.repaired)
			}
		}
	}()
	w.WriteHeader(http.StatusAccepted)
}
