package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/builder/client"
	"github.com/atoll-hosting/atoll/node"
	"github.com/atoll-hosting/atoll/node/nodetest"
)

// BenchmarkRepairAfterNodeLoss measures how long repair takes to bring a
// site of 3,000 files back to R=3 copies after one core node loses its
// disk: the node restarts empty and one census has the owners pull what
// they lack. Run with:
//
//	go test ./node -run '^$' -bench RepairAfterNodeLoss -benchtime 1x
func BenchmarkRepairAfterNodeLoss(b *testing.B) {
	const files = 3000
	c := nodetest.New(b, 3, 0, func(cfg *node.Config) { cfg.RepairInterval = time.Hour })
	ctx := context.Background()
	cl := c.Client(c.Leader())
	if _, err := cl.CreateSite(ctx, "big", nil, 0); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	for i := range files {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d.html", i)), []byte(fmt.Sprintf("<p>file %d</p>%0*d", i, 2000, i)), 0o644)
	}
	if _, err := cl.DeployDir(ctx, dir, "big", client.DeployOptions{Publish: true}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		var lost *nodetest.Member
		for _, m := range c.Running() {
			if !m.Node.Store().IsLeader() {
				lost = m
				break
			}
		}
		c.Kill(lost)
		os.RemoveAll(filepath.Join(lost.Cfg.DataDir, "blobs"))
		c.Restart(lost)
		c.WaitReady()
		b.StartTimer()
		start := time.Now()
		rep, err := c.Client(c.Leader()).Repair(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/repair")
		b.ReportMetric(float64(rep.Pulled), "blobs-pulled")
		if rep.UnderReplicated != 0 || rep.Missing != 0 {
			b.Fatalf("after repair: %+v", rep)
		}
	}
}

// BenchmarkLeaderFailover measures the time from killing the leader of a
// 3-node cluster (Raft timeout 1 s, the default) until a write through a
// surviving node succeeds. Run with:
//
//	go test ./node -run '^$' -bench LeaderFailover -benchtime 5x
func BenchmarkLeaderFailover(b *testing.B) {
	c := nodetest.New(b, 3, 0, func(cfg *node.Config) { cfg.RaftTimeout = 0 })
	ctx := context.Background()
	var total time.Duration
	for i := range b.N {
		b.StopTimer()
		c.WaitReady()
		leader := c.Leader()
		var other *nodetest.Member
		for _, m := range c.Running() {
			if m != leader {
				other = m
				break
			}
		}
		cl := c.Client(other)
		b.StartTimer()
		start := time.Now()
		c.Kill(leader)
		for {
			_, err := cl.CreateSite(ctx, fmt.Sprintf("s%d", i), nil, 0)
			if err == nil {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("no write within a minute: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		total += time.Since(start)
		b.StopTimer()
		c.Restart(leader)
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/failover")
}
