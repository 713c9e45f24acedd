//go:build linux

package main

// The faults of TestChaos: which, when, on whom, and how long they last.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"time"
)

type chaosFault string

const (
	faultKillCore  chaosFault = "kill -9 core"
	faultKillEdge  chaosFault = "kill -9 edge"
	faultPause     chaosFault = "pause"
	faultPartition chaosFault = "partition leader"
	// Floods (chaos_floods_e2e_test.go): a visitor's idle connections on
	// one edge, a tenant's abandoned manifests and stalled tar upload.
	faultVisitorFlood chaosFault = "visitor flood"
	faultTenantFlood  chaosFault = "tenant flood"
)

// chaosFaults are the kinds of fault, in the order the figures list them.
var chaosFaults = []chaosFault{faultKillCore, faultKillEdge, faultPause, faultPartition, faultVisitorFlood, faultTenantFlood}

// faultLoop injects one fault at a time, from a seeded schedule: first every
// kind once in a shuffled order (even if that outlasts until, so that a
// short run still has each), then at random. At most one core node is
// under a fault at any moment (a partition may come with an edge kill; a
// tenant flood puts no node under a fault).
func (c *chaos) faultLoop(ctx context.Context, until time.Time) {
	rng := rand.New(rand.NewPCG(uint64(c.seed), 1))
	kinds := slices.Clone(chaosFaults)
	if !c.net.Enabled() {
		kinds = slices.DeleteFunc(kinds, func(k chaosFault) bool { return k == faultPartition })
	}
	plan := slices.Clone(kinds)
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	// A quiet start: the deployers acknowledge a few deploys first.
	c.awaitAcks(ctx, 3, until)
	for i := 0; i < 10_000 && (i < len(plan) || time.Now().Before(until)) && ctx.Err() == nil && !c.failed(); i++ {
		kind := kinds[rng.IntN(len(kinds))]
		if i < len(plan) {
			kind = plan[i]
		}
		c.inject(ctx, rng, kind)
		sleepCtx(ctx, time.Duration(300+rng.IntN(1200))*time.Millisecond)
	}
}

// awaitAcks waits until n deploys have been acknowledged, ctx ends or
// until passes.
func (c *chaos) awaitAcks(ctx context.Context, n int, until time.Time) {
	for {
		c.mu.Lock()
		k := len(c.acked)
		c.mu.Unlock()
		if k >= n {
			return
		}
		select {
		case <-c.ackc:
		case <-ctx.Done():
			return
		case <-time.After(time.Until(until)):
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

func (c *chaos) cores() []*chaosNode { return c.nodes[:chaosCores] }
func (c *chaos) edges() []*chaosNode { return c.nodes[chaosCores:] }

// leader asks the cores' /metrics which one leads; nil if none answers so.
func (c *chaos) leader(ctx context.Context) *chaosNode {
	for range 50 {
		for _, n := range c.cores() {
			mctx, cancel := context.WithTimeout(ctx, time.Second)
			_, lead, err := c.metrics(mctx, n)
			cancel()
			if err == nil && lead {
				return n
			}
		}
		sleepCtx(ctx, 100*time.Millisecond)
		if ctx.Err() != nil {
			break
		}
	}
	return nil
}

// faultOn marks n as under a fault from now; the returned function ends
// the fault once n answers /readyz again.
func (c *chaos) faultOn(n *chaosNode, what string) (end func(ctx context.Context)) {
	c.mu.Lock()
	c.faults[n.idx] = append(c.faults[n.idx], chaosInterval{from: time.Now(), what: what})
	k := len(c.faults[n.idx]) - 1
	c.faultCount[what]++
	c.mu.Unlock()
	return func(ctx context.Context) {
		rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		if err := c.waitReady(rctx, n); err != nil {
			c.harnessError("after %s: %v", what, err)
		}
		c.mu.Lock()
		c.faults[n.idx][k].to = time.Now()
		c.mu.Unlock()
	}
}

// newLeader waits until a core other than old leads, and says how long
// that took from since.
func (c *chaos) newLeader(ctx context.Context, old *chaosNode, since time.Time, hold time.Duration) (string, time.Duration) {
	deadline := time.Now().Add(hold)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, n := range c.cores() {
			if n == old {
				continue
			}
			mctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			_, lead, err := c.metrics(mctx, n)
			cancel()
			if err == nil && lead {
				d := time.Since(since)
				c.mu.Lock()
				c.elections = append(c.elections, d)
				c.mu.Unlock()
				return n.ID, d
			}
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	return "", 0
}

func (c *chaos) inject(ctx context.Context, rng *rand.Rand, kind chaosFault) {
	lead := c.leader(ctx)
	switch kind {
	case faultKillCore, faultKillEdge:
		pool := c.edges()
		if kind == faultKillCore {
			pool = c.cores()
		}
		n := pool[rng.IntN(len(pool))]
		if kind == faultKillCore && lead != nil && rng.IntN(2) == 0 {
			n = lead
		}
		down := time.Duration(500+rng.IntN(2500)) * time.Millisecond
		c.killRestart(ctx, n, down, n == lead)
	case faultPause:
		n := c.nodes[rng.IntN(len(c.nodes))]
		if lead != nil && rng.IntN(3) == 0 {
			n = lead
		}
		hold := time.Duration(2000+rng.IntN(3000)) * time.Millisecond
		role := ""
		if n == lead {
			role = " (leader)"
		}
		end := c.faultOn(n, string(faultPause))
		start := time.Now()
		n.Signal(syscall.SIGSTOP)
		elected := ""
		if n == lead {
			if id, d := c.newLeader(ctx, n, start, hold); id != "" {
				elected = fmt.Sprintf("; %s leads after %s", id, d.Round(10*time.Millisecond))
			}
		}
		sleepCtx(ctx, time.Until(start.Add(hold)))
		n.Signal(syscall.SIGCONT)
		end(ctx)
		c.logAt(start, "pause %s%s for %s (SIGSTOP, SIGCONT)%s; ready again %s after SIGCONT", n.ID, role, hold.Round(10*time.Millisecond), elected, time.Since(start.Add(hold)).Round(10*time.Millisecond))
	case faultPartition:
		if lead == nil {
			c.logf("partition: no leader found; skipped")
			return
		}
		hold := time.Duration(3000+rng.IntN(5000)) * time.Millisecond
		var edge *chaosNode
		if rng.IntN(3) == 0 {
			edge = c.edges()[rng.IntN(chaosEdges)]
		}
		end := c.faultOn(lead, string(faultPartition))
		start := time.Now()
		if err := c.net.Cut(lead.idx); err != nil {
			c.harnessError("cut %s: %v", lead.ID, err)
			end(ctx)
			return
		}
		var also sync.WaitGroup
		if edge != nil {
			after, down := time.Duration(rng.IntN(1000))*time.Millisecond, time.Duration(500+rng.IntN(1500))*time.Millisecond
			also.Go(func() {
				sleepCtx(ctx, after)
				c.killRestart(ctx, edge, down, false)
			})
		}
		elected := ""
		if id, d := c.newLeader(ctx, lead, start, hold); id != "" {
			elected = fmt.Sprintf("; %s leads after %s", id, d.Round(10*time.Millisecond))
		}
		sleepCtx(ctx, time.Until(start.Add(hold)))
		if err := c.net.Heal(lead.idx); err != nil {
			c.harnessError("heal %s: %v", lead.ID, err)
		}
		healed := time.Now()
		end(ctx)
		also.Wait()
		with := ""
		if edge != nil {
			with = " (with an edge kill meanwhile)"
		}
		c.logAt(start, "partition %s (leader) from the others for %s%s%s; ready again %s after healing", lead.ID, hold.Round(10*time.Millisecond), with, elected, time.Since(healed).Round(10*time.Millisecond))
	case faultVisitorFlood:
		c.visitorFlood(ctx, rng)
	case faultTenantFlood:
		c.tenantFlood(ctx, rng)
	}
}

// killRestart kill -9s n, keeps it down for down, restarts it and waits
// until it is ready.
func (c *chaos) killRestart(ctx context.Context, n *chaosNode, down time.Duration, wasLeader bool) {
	what := string(faultKillEdge)
	if n.role == "core" {
		what = string(faultKillCore)
	}
	end := c.faultOn(n, what)
	start := time.Now()
	n.Stop(syscall.SIGKILL, 15*time.Second)
	elected := ""
	if wasLeader {
		if id, d := c.newLeader(ctx, n, start, down+10*time.Second); id != "" {
			elected = fmt.Sprintf("; %s leads after %s", id, d.Round(10*time.Millisecond))
		}
	}
	sleepCtx(ctx, time.Until(start.Add(down)))
	restarted := time.Now()
	if err := c.launch(n); err != nil {
		c.harnessError("restart %s: %v", n.ID, err)
		return
	}
	end(ctx)
	role := ""
	if wasLeader {
		role = " (leader)"
	}
	c.logAt(start, "kill -9 %s%s, down %s%s; restarted, ready after %s", n.ID, role, restarted.Sub(start).Round(10*time.Millisecond), elected, time.Since(restarted).Round(10*time.Millisecond))
}
