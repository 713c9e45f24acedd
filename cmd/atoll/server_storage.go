package main

import (
	"flag"

	"github.com/atoll-hosting/atoll/node"
)

// declareStorageFlags declares the `atoll server` flags of disk safety
// (scrub, free space reserve), background compression, and the advanced Raft tuning that tests use
// to force frequent snapshots and quick elections. A Raft flag left at 0
// keeps node's default.
func declareStorageFlags(fs *flag.FlagSet, cfg *node.Config) {
	sizeVar(fs, &cfg.ScrubRate, "scrub-rate", "`bytes` per second the scrubber reads back to check blobs against their hash, e.g. 32MiB")
	fs.DurationVar(&cfg.ScrubInterval, "scrub-interval", cfg.ScrubInterval, "how often a full scrub pass starts ('atoll node scrub ID' runs one now)")
	fs.DurationVar(&cfg.GCGrace, "gc-grace", cfg.GCGrace, "how long a blob no retained deploy references is kept before it is deleted")
	sizeVar(fs, &cfg.MinFreeBytes, "min-free", "disk `space` kept free for Raft: uploads are refused (507) below it; 0 only guards a full disk")
	fs.IntVar(&cfg.CompressWorkers, "compress-workers", cfg.CompressWorkers, "background workers that make the compressed variants of new blobs: 0 means half the CPUs, -1 none (files up to 1 MiB are then compressed per request)")
	fs.Uint64Var(&cfg.RaftSnapshotThreshold, "raft-snapshot-threshold", cfg.RaftSnapshotThreshold, "advanced: log entries that trigger a Raft snapshot (default 4096)")
	fs.DurationVar(&cfg.RaftSnapshotInterval, "raft-snapshot-interval", cfg.RaftSnapshotInterval, "advanced: how often Raft checks the snapshot threshold (default 2m)")
	sizeVar(fs, &cfg.RaftSnapshotBytes, "raft-snapshot-bytes", "advanced: `bytes` of commands in the log since the last snapshot that trigger a Raft snapshot within a second, whatever the entry count (default 64MiB)")
	fs.Uint64Var(&cfg.RaftTrailingLogs, "raft-trailing-logs", cfg.RaftTrailingLogs, "advanced: log entries kept after a snapshot (default 10240)")
	fs.DurationVar(&cfg.RaftTimeout, "raft-timeout", cfg.RaftTimeout, "advanced: Raft heartbeat and election timeout (default 1s)")
}

// raftFlags are the storage flags whose 0 means node's default: a value
// given for them must be positive.
var raftFlags = []string{"raft-snapshot-threshold", "raft-snapshot-interval", "raft-snapshot-bytes", "raft-trailing-logs", "raft-timeout"}

// checkStorageFlags checks the ranges of the storage flags once the command
// line and the environment are applied.
func checkStorageFlags(fs *flag.FlagSet) error {
	if err := checkPositive(fs, "scrub-rate", "scrub-interval"); err != nil {
		return err
	}
	grace, _ := numberOf(fs.Lookup("gc-grace").Value)
	if err := checkRange(fs, "gc-grace", grace >= 0, "a duration, 0 or more"); err != nil {
		return err
	}
	workers, _ := numberOf(fs.Lookup("compress-workers").Value)
	if err := checkRange(fs, "compress-workers", workers >= -1, "-1 (none), 0 (half the CPUs) or a number of workers"); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, name := range raftFlags {
		if given[name] {
			if err := checkPositive(fs, name); err != nil {
				return err
			}
		}
	}
	return nil
}
