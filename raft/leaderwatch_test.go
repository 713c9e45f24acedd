package raft

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestLeaderChangedWakesWaiters: a follower waiting on LeaderChanged is
// woken when the leader goes away and again when a new one is elected,
// and WaitForLeader returns as soon as there is one.
func TestLeaderChangedWakesWaiters(t *testing.T) {
	c := newCluster(t, 3, nil)
	old := c.leader()
	var follower *Store
	for _, s := range c.followers() {
		follower = s
		break
	}
	woken := follower.LeaderChanged()
	select {
	case <-woken:
		// Only a real change may wake it (a loaded machine may move
		// leadership by itself).
		if follower.LeaderID() == old.ID() {
			t.Fatal("LeaderChanged fired while the leader stayed")
		}
		t.Skip("leadership moved by itself; the scenario needs a stable leader")
	case <-time.After(200 * time.Millisecond):
	}
	c.kill(old.ID())
	select {
	case <-woken:
	case <-time.After(10 * time.Second):
		t.Fatal("LeaderChanged did not fire after the leader was killed")
	}
	if err := follower.WaitForLeader(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("WaitForLeader after the old leader died: %v", err)
	}
	if got := follower.LeaderID(); got == "" || got == old.ID() {
		t.Fatalf("leader after WaitForLeader = %q, want a new one (old %s)", got, old.ID())
	}
}

// TestWaitsEndWhenTheStoreCloses: a WaitApplied for an index that never
// comes returns ErrClosed once the store closes, and LeaderChanged of a
// closed store is closed.
func TestWaitsEndWhenTheStoreCloses(t *testing.T) {
	c := newCluster(t, 1, nil)
	s := c.leader()
	errc := make(chan error, 1)
	go func() { errc <- s.WaitApplied(context.Background(), s.AppliedIndex()+1000) }()
	time.Sleep(50 * time.Millisecond) // let it block; the verdict does not depend on it
	c.kill(s.ID())
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("WaitApplied after Close = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitApplied still blocked after Close")
	}
	select {
	case <-s.LeaderChanged():
	default:
		t.Fatal("LeaderChanged of a closed store is not closed")
	}
}
