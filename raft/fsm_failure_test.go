package raft

import (
	"errors"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/atoll-hosting/atoll"
)

// A batch the FSM cannot store (here a stored record it cannot decode, as
// an I/O error or a full disk would do) stops the FSM instead of panicking:
// the batch and every later one are answered with ErrStorage and not
// applied, the applied index stays, and no snapshot is taken.
func TestStorageFailureStopsApplying(t *testing.T) {
	h := newFSM(t)
	seed(h)
	if err := h.f.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSites).Put([]byte("blog"), []byte("{not json"))
	}); err != nil {
		t.Fatal(err)
	}
	applied := h.f.AppliedIndex()

	if err := h.apply(UpdateSite{Name: "blog", Retain: 3}); !errors.Is(err, ErrStorage) {
		t.Fatalf("apply over a broken record: %v, want ErrStorage", err)
	}
	if err := h.f.StorageFailed(); !errors.Is(err, ErrStorage) {
		t.Errorf("StorageFailed = %v, want ErrStorage", err)
	}
	if err := h.apply(CreateSite{Name: "other"}); !errors.Is(err, ErrStorage) {
		t.Errorf("a later, sound command: %v, want ErrStorage (nothing applied after a failure)", err)
	}
	if got := h.f.AppliedIndex(); got != applied {
		t.Errorf("AppliedIndex = %d, want %d: the failed batches must not count", got, applied)
	}
	if _, err := h.f.Site("other"); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("site other after the storage failure: %v, want not found", err)
	}
	if _, err := h.f.Snapshot(); !errors.Is(err, ErrStorage) {
		t.Errorf("Snapshot after the failure: %v, want ErrStorage", err)
	}
}
