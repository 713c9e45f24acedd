package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// TestPrefetchQueueBoundsWorkers queues a new edge's backlog of published
// deploys and checks that every one is prefetched once, never more than
// prefetchWorkers at a time, and that a deploy queued while the backlog
// waits goes before it.
func TestPrefetchQueueBoundsWorkers(t *testing.T) {
	var q prefetchQueue
	var wg sync.WaitGroup
	release := make(chan struct{})
	var mu sync.Mutex
	running, most := 0, 0
	var order []string
	run := func(id string) {
		mu.Lock()
		running++
		most = max(most, running)
		order = append(order, id)
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		mu.Unlock()
	}
	var backlog []string
	for i := range 1000 {
		backlog = append(backlog, fmt.Sprintf("old%04d", i))
	}
	q.push(context.Background(), backlog, &wg, run)
	q.push(context.Background(), []string{"fresh"}, &wg, run)
	close(release)
	wg.Wait()

	if most > prefetchWorkers {
		t.Errorf("%d prefetches ran at once, want at most %d", most, prefetchWorkers)
	}
	if len(order) != 1001 {
		t.Fatalf("%d prefetches ran, want 1001", len(order))
	}
	seen := map[string]bool{}
	for _, id := range order {
		if seen[id] {
			t.Fatalf("deploy %s prefetched twice", id)
		}
		seen[id] = true
	}
	// The workers took prefetchWorkers deploys before "fresh" was queued;
	// it is the next one taken.
	if i := slices.Index(order, "fresh"); i > prefetchWorkers {
		t.Errorf("the fresh publish was prefetched %dth, behind the backlog; want within the first %d", i+1, prefetchWorkers+1)
	}
}
