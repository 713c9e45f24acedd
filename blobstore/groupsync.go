package blobstore

import "sync"

// groupSync is the group commit of PutBatch's durability points: one
// syncfs(2) makes durable everything written to the file system before it
// started, so concurrent batches share the rounds instead of each paying
// its own. A caller waits for the first round that starts after its call
// (a round already running may have started before the caller's writes),
// and at most one round runs at a time.
type groupSync struct {
	mu      sync.Mutex
	cond    *sync.Cond
	started uint64 // rounds started
	done    uint64 // rounds finished
	running bool
	// sleepers counts the callers waiting for a round to end (tests).
	sleepers int
	// errRound is the last round that failed, err its error: a caller
	// whose round is at or before it fails too.
	errRound uint64
	err      error
	do       func() error
}

// newGroupSync returns a groupSync whose rounds call do.
func newGroupSync(do func() error) *groupSync {
	g := &groupSync{do: do}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// wait returns once a round that started after the call has finished: nil
// when it made everything written before the call durable.
func (g *groupSync) wait() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	ticket := g.started + 1
	for g.done < ticket {
		if g.running {
			g.sleepers++
			g.cond.Wait()
			g.sleepers--
			continue
		}
		g.running = true
		g.started++
		round := g.started
		g.mu.Unlock()
		err := g.do()
		g.mu.Lock()
		g.running = false
		g.done = round
		if err != nil {
			g.errRound, g.err = round, err
		}
		g.cond.Broadcast()
	}
	if g.errRound >= ticket {
		return g.err
	}
	return nil
}

// waiting returns how many callers wait for a running round to end.
func (g *groupSync) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sleepers
}
