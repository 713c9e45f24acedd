package main

import (
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/atoll-hosting/atoll/node"
)

// storageFlags are the `atoll server` flags of disk safety (scrub, free
// space reserve) and the advanced Raft tuning that tests use to force
// frequent snapshots and quick elections.
type storageFlags struct {
	scrubRate, scrubInterval, minFree                  string
	snapThreshold, snapInterval, trailingLogs, timeout string
}

func registerStorageFlags(fs *flag.FlagSet, cfg *node.Config) *storageFlags {
	f := &storageFlags{
		scrubRate:     envOr("scrub-rate", "32MiB"),
		scrubInterval: envOr("scrub-interval", cfg.ScrubInterval.String()),
		minFree:       envOr("min-free", "1GiB"),
		snapThreshold: envOr("raft-snapshot-threshold", ""),
		snapInterval:  envOr("raft-snapshot-interval", ""),
		trailingLogs:  envOr("raft-trailing-logs", ""),
		timeout:       envOr("raft-timeout", ""),
	}
	fs.StringVar(&f.scrubRate, "scrub-rate", f.scrubRate, "bytes per second the scrubber reads back to check blobs against their hash, e.g. 32MiB")
	fs.StringVar(&f.scrubInterval, "scrub-interval", f.scrubInterval, "how often a full scrub pass starts ('atoll node scrub ID' runs one now)")
	fs.StringVar(&f.minFree, "min-free", f.minFree, "disk space kept free for Raft: uploads are refused (507) below it; 0 only guards a full disk")
	fs.StringVar(&f.snapThreshold, "raft-snapshot-threshold", f.snapThreshold, "advanced: log entries that trigger a Raft snapshot (default 4096)")
	fs.StringVar(&f.snapInterval, "raft-snapshot-interval", f.snapInterval, "advanced: how often Raft checks the snapshot threshold (default 2m)")
	fs.StringVar(&f.trailingLogs, "raft-trailing-logs", f.trailingLogs, "advanced: log entries kept after a snapshot (default 10240)")
	fs.StringVar(&f.timeout, "raft-timeout", f.timeout, "advanced: Raft heartbeat and election timeout (default 1s)")
	return f
}

// apply parses the flags into cfg.
func (f *storageFlags) apply(cfg *node.Config) error {
	var err error
	if cfg.ScrubRate, err = parseBytes(f.scrubRate); err != nil || cfg.ScrubRate == 0 {
		return fmt.Errorf("%w: --scrub-rate %q: want a positive size per second such as 32MiB", errUsage, f.scrubRate)
	}
	if cfg.ScrubInterval, err = time.ParseDuration(f.scrubInterval); err != nil || cfg.ScrubInterval <= 0 {
		return fmt.Errorf("%w: --scrub-interval %q: want a positive duration such as 24h", errUsage, f.scrubInterval)
	}
	if cfg.MinFreeBytes, err = parseBytes(f.minFree); err != nil {
		return fmt.Errorf("%w: --min-free: %v", errUsage, err)
	}
	uints := []struct {
		name, v string
		p       *uint64
	}{{"raft-snapshot-threshold", f.snapThreshold, &cfg.RaftSnapshotThreshold}, {"raft-trailing-logs", f.trailingLogs, &cfg.RaftTrailingLogs}}
	for _, u := range uints {
		if u.v == "" {
			continue
		}
		if *u.p, err = strconv.ParseUint(u.v, 10, 64); err != nil || *u.p == 0 {
			return fmt.Errorf("%w: --%s %q: want a positive number", errUsage, u.name, u.v)
		}
	}
	durations := []struct {
		name, v string
		p       *time.Duration
	}{{"raft-snapshot-interval", f.snapInterval, &cfg.RaftSnapshotInterval}, {"raft-timeout", f.timeout, &cfg.RaftTimeout}}
	for _, d := range durations {
		if d.v == "" {
			continue
		}
		if *d.p, err = time.ParseDuration(d.v); err != nil || *d.p <= 0 {
			return fmt.Errorf("%w: --%s %q: want a positive duration", errUsage, d.name, d.v)
		}
	}
	return nil
}
