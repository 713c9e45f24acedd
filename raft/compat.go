package raft

import (
	"fmt"

	"github.com/atoll-hosting/atoll"

	bolt "go.etcd.io/bbolt"
)

// Compatibility of stored state with this binary (see DESIGN.md, "Changing
// the replicated formats"). State written by a newer atoll — a feature
// level above atoll.MaxFeatureLevel in an FSM file, a snapshot or a
// backup, or a snapshot format version above snapshotVersion — is refused
// whole before anything is written: this binary would read it with the
// meaning of an older format and, applying on top of it, write a state no
// node of the cluster holds.

// NewerStateError says that state was written by a newer atoll than this
// binary. It wraps atoll.ErrInvalid (a restore answers 400 with it).
type NewerStateError struct {
	What    string // "the raft state in <path>", "the snapshot"
	Level   int    // the feature level it holds, when that is the reason
	Version int    // its snapshot format version, when that is the reason
}

func (e *NewerStateError) Error() string {
	if e.Version != 0 {
		return fmt.Sprintf("%s is in format version %d; this atoll knows snapshot formats up to %d: run a newer atoll",
			e.What, e.Version, snapshotVersion)
	}
	return fmt.Sprintf("%s is at cluster feature level %d; this atoll knows levels up to %d: run a newer atoll",
		e.What, e.Level, atoll.MaxFeatureLevel)
}

func (e *NewerStateError) Unwrap() error { return atoll.ErrInvalid }

// checkLevelKnown refuses a state whose feature level this binary does not
// know. what names the state in the error.
func checkLevelKnown(tx *bolt.Tx, what string) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return nil // a new file: openBolt creates the buckets
	}
	if level := featureLevel(tx); level > atoll.MaxFeatureLevel {
		return &NewerStateError{What: what, Level: level}
	}
	return nil
}

// checkRestorable makes the checks every restored state passes before it
// replaces the live one (FSM.Restore, Store.RestoreBackup): a feature level
// this binary knows, the base buckets (later ones are created by
// openBolt), and the applied index its header names.
func checkRestorable(tx *bolt.Tx, want indexTerm) error {
	if err := checkLevelKnown(tx, "the snapshot"); err != nil {
		return err
	}
	for _, name := range baseBuckets {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("no bucket %q", name)
		}
	}
	if got := getApplied(tx); got != want {
		return fmt.Errorf("state is at index %d term %d, its header says %d term %d",
			got.index, got.term, want.index, want.term)
	}
	return nil
}
