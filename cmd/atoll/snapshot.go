package main

import (
	"context"
	"fmt"
	"io"

	"github.com/atoll-hosting/atoll/raft"
)

// runSnapshot handles `atoll snapshot save|restore FILE`: backups of the
// cluster's metadata (sites, deploys, manifests, domains, certificates).
// Blobs are not in it; see docs/OPERATIONS.md, "Backups".
func runSnapshot(ctx context.Context, env *cliEnv, args []string) error {
	return runGroup(ctx, env, "snapshot", args,
		subcommand{"save", runSnapshotSave},
		subcommand{"restore", runSnapshotRestore})
}

// runSnapshotSave handles `atoll snapshot save FILE`.
func runSnapshotSave(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "snapshot save", "snapshot save FILE")
	pos, c, err := cf.parse(fs, args, 1, "FILE")
	if err != nil {
		return err
	}
	info, err := c.SaveSnapshotFile(ctx, pos[0], checkSnapshot)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "saved %s: metadata of node %s at applied index %d, %d bytes\n",
		pos[0], info.Node, info.AppliedIndex, info.Bytes)
	return nil
}

// runSnapshotRestore handles `atoll snapshot restore FILE`.
func runSnapshotRestore(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "snapshot restore", "snapshot restore FILE")
	pos, c, err := cf.parse(fs, args, 1, "FILE")
	if err != nil {
		return err
	}
	res, err := c.RestoreSnapshotFile(ctx, pos[0], checkSnapshot)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "restored %s (saved at index %d): %d sites, %d deploys; cluster now at index %d; %d deploy tokens kept; took %s\n",
		pos[0], res.BackupIndex, res.Sites, res.Deploys, res.AppliedIndex, res.TokensKept, res.Took)
	return nil
}

// checkSnapshot checks a whole snapshot file (header, zstd checksum) before
// it is kept or sent.
func checkSnapshot(r io.Reader) (uint64, error) {
	info, err := raft.VerifyBackup(r)
	return info.AppliedIndex, err
}
