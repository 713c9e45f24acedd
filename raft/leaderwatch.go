package raft

import (
	"sync"

	hraft "github.com/hashicorp/raft"
)

// leaderWatch turns hashicorp/raft's leader observations into a broadcast
// channel, like FSM.Changed: closed on the next change, then replaced.
type leaderWatch struct {
	mu     sync.Mutex
	ch     chan struct{} // closed on the next change; nil until asked for
	over   bool          // the store closed: ch stays closed for good
	obs    *hraft.Observer
	events chan hraft.Observation
	exited chan struct{}
}

// start registers an observer of leader changes on r and wakes waiters on
// each one until done is closed.
func (w *leaderWatch) start(r *hraft.Raft, done <-chan struct{}) {
	// Non-blocking: raft never waits for us. An observation is dropped only
	// when the buffer is full, and then the ones queued wake the waiters,
	// who re-check the leader themselves.
	w.events = make(chan hraft.Observation, 64)
	w.exited = make(chan struct{})
	w.obs = hraft.NewObserver(w.events, false, func(o *hraft.Observation) bool {
		_, ok := o.Data.(hraft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(w.obs)
	go func() {
		defer close(w.exited)
		for {
			select {
			case <-w.events:
				w.notify()
			case <-done:
				w.finish()
				return
			}
		}
	}()
}

// stop deregisters the observer and waits for the goroutine, which exits
// once done is closed.
func (w *leaderWatch) stop(r *hraft.Raft) {
	if w.obs == nil {
		return // never started
	}
	r.DeregisterObserver(w.obs)
	<-w.exited
}

func (w *leaderWatch) changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

func (w *leaderWatch) notify() {
	w.mu.Lock()
	if w.ch != nil && !w.over {
		close(w.ch)
		w.ch = nil
	}
	w.mu.Unlock()
}

// finish wakes every waiter for good: from now on changed answers a closed
// channel.
func (w *leaderWatch) finish() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	if !w.over {
		close(w.ch)
		w.over = true
	}
}
