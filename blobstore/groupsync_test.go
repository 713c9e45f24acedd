package blobstore

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGroupSyncSharesRounds: callers that arrive while a round runs wait
// for the next one, which they all share; a failed round fails its
// callers only.
func TestGroupSyncSharesRounds(t *testing.T) {
	var rounds atomic.Int64
	entered := make(chan struct{})
	release := make(chan error)
	g := newGroupSync(func() error {
		rounds.Add(1)
		entered <- struct{}{}
		return <-release
	})

	// started waits for the next round to start.
	started := func(what string) {
		t.Helper()
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal(what)
		}
	}
	first := make(chan error, 1)
	go func() { first <- g.wait() }()
	started("the first caller started no round") // the next callers come after it started

	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Go(func() { errs <- g.wait() })
	}
	// Let the five reach the wait before round 1 ends: they must not count
	// on it. (They block on the lock or the condition either way.)
	for g.waiting() < 5 {
		runtime.Gosched()
	}
	release <- nil
	if err := <-first; err != nil {
		t.Fatalf("round 1: %v", err)
	}
	started("the callers that came during round 1 never got a round of their own") // shared by the five
	release <- errors.New("disk gone")
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			t.Error("a caller of the failed round got nil")
		}
	}
	if got := rounds.Load(); got != 2 {
		t.Errorf("%d rounds for 6 callers, want 2", got)
	}

	go func() { <-entered; release <- nil }()
	if err := g.wait(); err != nil {
		t.Errorf("a round after the failed one: %v", err)
	}
}
