package acme_test

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/acme"
	"github.com/atoll-hosting/atoll/raft"
	"github.com/atoll-hosting/atoll/raft/rafttest"
)

const clusterKey = "test-cluster-key"

// TestStorage: certmagic's storage contract over a real single-node store:
// missing keys are fs.ErrNotExist, folders exist, list and stat, deleting a
// folder deletes what it holds, and a private key is sealed in the
// replicated state but loads as it was stored.
func TestStorage(t *testing.T) {
	ctx := context.Background()
	st := rafttest.Open(t)
	s := acme.NewStorage(st, "n1", clusterKey)

	if _, err := s.Load(ctx, "certificates/ca/a.example.com/a.example.com.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key: %v, want fs.ErrNotExist", err)
	}
	crt, key := "certificates/ca/a.example.com/a.example.com.crt", "certificates/ca/a.example.com/a.example.com.key"
	pem := "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n"
	for k, v := range map[string]string{crt: "CERT", key: pem, "acme/ca/users/ops/ops.json": "{}"} {
		if err := s.Store(ctx, k, []byte(v)); err != nil {
			t.Fatalf("Store %s: %v", k, err)
		}
	}
	raw, _, err := st.ACMEValue(key)
	if err != nil || strings.Contains(string(raw), "PRIVATE KEY") || !raft.IsSealedKey(string(raw)) {
		t.Errorf("replicated private key = %.40q, %v; want it sealed", raw, err)
	}
	if got, err := s.Load(ctx, key); err != nil || string(got) != pem {
		t.Errorf("Load of the private key = %q, %v; want the PEM stored", got, err)
	}
	if !s.Exists(ctx, "certificates/ca") || !s.Exists(ctx, crt) || s.Exists(ctx, "certificates/c") {
		t.Error("Exists: want folders and values, not partial names")
	}
	if keys, err := s.List(ctx, "certificates/ca/a.example.com", false); err != nil || !slices.Equal(keys, []string{crt, key}) {
		t.Errorf("List = %q, %v", keys, err)
	}
	if _, err := s.List(ctx, "nothing", true); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List of nothing: %v, want fs.ErrNotExist", err)
	}
	if info, err := s.Stat(ctx, crt); err != nil || !info.IsTerminal || info.Size != 4 || time.Since(info.Modified) > time.Minute {
		t.Errorf("Stat of a value = %+v, %v", info, err)
	}
	if info, err := s.Stat(ctx, "certificates"); err != nil || info.IsTerminal {
		t.Errorf("Stat of a folder = %+v, %v", info, err)
	}
	if err := s.Delete(ctx, "certificates/ca"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, crt) || s.Exists(ctx, key) {
		t.Error("values left after deleting their folder")
	}
	if err := s.Delete(ctx, "certificates/ca"); err != nil {
		t.Errorf("Delete of what is gone: %v, want nil", err)
	}
}

// TestStorageLock: two nodes' storages over one state: the second cannot
// take a lock the first holds until the first releases it.
func TestStorageLock(t *testing.T) {
	ctx := context.Background()
	st := rafttest.Open(t)
	n1, n2 := acme.NewStorage(st, "n1", clusterKey), acme.NewStorage(st, "n2", clusterKey)
	const name = "issue_cert_a.example.com"
	if err := n1.Lock(ctx, name); err != nil {
		t.Fatal(err)
	}
	if ok, err := n2.TryLock(ctx, name); ok || err != nil {
		t.Fatalf("n2 TryLock while n1 holds it: %v, %v; want false, nil", ok, err)
	}
	if err := n1.RenewLockLease(ctx, name, time.Minute); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n2.Lock(ctx, name) }()
	if err := n2.Unlock(ctx, name); err != nil { // not n2's: nothing
		t.Fatal(err)
	}
	if err := n1.Unlock(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("n2 Lock after n1 released it: %v", err)
	}
	if ok, _ := n1.TryLock(ctx, name); ok {
		t.Fatal("n1 took the lock n2 holds")
	}
}
