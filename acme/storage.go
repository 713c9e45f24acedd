package acme

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/raft"
)

// Interface guards.
var (
	_ certmagic.Storage          = (*Storage)(nil)
	_ certmagic.TryLocker        = (*Storage)(nil)
	_ certmagic.LockLeaseRenewer = (*Storage)(nil)
	_ Meta                       = (*raft.Store)(nil)
)

// LockTTL is how long a lock outlives its holder's last renewal: the
// holder renews it every LockTTL/3 while it holds it, so a lock of a node
// that died is free again within LockTTL.
const LockTTL = 30 * time.Second

// lockRetry is how often a blocked Lock asks again.
const lockRetry = time.Second

// Meta is the replicated state the Storage reads and writes: *raft.Store,
// or node's meta that forwards writes to the leader.
type Meta interface {
	Apply(ctx context.Context, cmd raft.Command) error
	ACMEValue(key string) ([]byte, time.Time, error)
	ACMEKeys(prefix string, recursive bool) ([]string, bool, error)
}

// Storage is certmagic.Storage over the replicated ACME store. Holder names
// this node in the locks it takes; ClusterKey seals private keys ("" keeps
// them as they are, for a single node without a cluster key).
type Storage struct {
	meta       Meta
	holder     string
	clusterKey string
	now        func() time.Time

	mu     sync.Mutex
	held   map[string]context.CancelFunc // locks held, each with its renewal
	closed bool
}

// NewStorage returns the Storage of node holder. Close stops renewing the
// locks it holds.
func NewStorage(meta Meta, holder, clusterKey string) *Storage {
	return &Storage{meta: meta, holder: holder, clusterKey: clusterKey, now: time.Now, held: map[string]context.CancelFunc{}}
}

// Close stops renewing the locks this Storage holds: they expire within
// LockTTL, as those of a node that died.
func (s *Storage) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for name, stop := range s.held {
		stop()
		delete(s.held, name)
	}
}

// keepLock renews lock name every LockTTL/3 until Unlock or Close.
func (s *Storage) keepLock(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.held[name] != nil {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	s.held[name] = stop
	go func() {
		t := time.NewTicker(LockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				// A failed renewal is tried again at the next tick; the
				// lock may expire meanwhile, at worst allowing a second
				// order of the same name.
				_ = s.meta.Apply(ctx, raft.LockACME{Name: name, Holder: s.holder, At: s.now().UTC(), TTL: LockTTL})
			}
		}
	}()
}

// sealed reports whether values under key are private keys.
func sealed(key string) bool { return strings.HasSuffix(key, ".key") }

// Store puts value at key, sealing a private key first.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	if sealed(key) && s.clusterKey != "" {
		v, err := raft.SealCertKey(s.clusterKey, key, string(value))
		if err != nil {
			return err
		}
		value = []byte(v)
	}
	return s.meta.Apply(ctx, raft.PutACME{Key: key, Value: value, Modified: s.now().UTC()})
}

// Load returns the value at key (a private key opened), or an error
// wrapping fs.ErrNotExist.
func (s *Storage) Load(_ context.Context, key string) ([]byte, error) {
	v, _, err := s.meta.ACMEValue(key)
	if errors.Is(err, atoll.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", fs.ErrNotExist, key)
	}
	if err != nil {
		return nil, err
	}
	if sealed(key) {
		pem, err := raft.OpenCertKey(s.clusterKey, key, string(v))
		if err != nil {
			return nil, err
		}
		v = []byte(pem)
	}
	return v, nil
}

// Delete removes key and everything under it; a key that is not there is
// not an error.
func (s *Storage) Delete(ctx context.Context, key string) error {
	err := s.meta.Apply(ctx, raft.DeleteACME{Key: key})
	if errors.Is(err, atoll.ErrNotFound) {
		return nil
	}
	return err
}

// Exists reports whether key is a value or has values under it.
func (s *Storage) Exists(_ context.Context, key string) bool {
	_, ok, err := s.meta.ACMEKeys(key, false)
	return err == nil && ok
}

// List returns the keys under path: one level down, or all of them when
// recursive.
func (s *Storage) List(_ context.Context, path string, recursive bool) ([]string, error) {
	keys, ok, err := s.meta.ACMEKeys(path, recursive)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", fs.ErrNotExist, path)
	}
	return keys, nil
}

// Stat describes key: a value (terminal) or a folder of values.
func (s *Storage) Stat(_ context.Context, key string) (certmagic.KeyInfo, error) {
	v, mod, err := s.meta.ACMEValue(key)
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: mod, Size: int64(len(v)), IsTerminal: true}, nil
	}
	if !errors.Is(err, atoll.ErrNotFound) {
		return certmagic.KeyInfo{}, err
	}
	if _, ok, err := s.meta.ACMEKeys(key, false); err != nil {
		return certmagic.KeyInfo{}, err
	} else if !ok {
		return certmagic.KeyInfo{}, fmt.Errorf("%w: %s", fs.ErrNotExist, key)
	}
	return certmagic.KeyInfo{Key: key}, nil
}

// TryLock takes lock name if nobody else holds it, and keeps renewing it
// until Unlock.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	err := s.meta.Apply(ctx, raft.LockACME{Name: name, Holder: s.holder, At: s.now().UTC(), TTL: LockTTL})
	if errors.Is(err, atoll.ErrConflict) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	s.keepLock(name)
	return true, nil
}

// Lock blocks until it holds lock name, or ctx ends.
func (s *Storage) Lock(ctx context.Context, name string) error {
	t := time.NewTicker(lockRetry)
	defer t.Stop()
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// RenewLockLease renews a lock this node holds for LockTTL, whatever lease
// is asked: the holder renews its locks every LockTTL/3 for as long as it
// holds them, so a longer lease would only keep the lock of a node that
// died from the others for longer.
func (s *Storage) RenewLockLease(ctx context.Context, name string, _ time.Duration) error {
	return s.meta.Apply(ctx, raft.LockACME{Name: name, Holder: s.holder, At: s.now().UTC(), TTL: LockTTL})
}

// Unlock releases lock name if this node holds it.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	if stop := s.held[name]; stop != nil {
		stop()
		delete(s.held, name)
	}
	s.mu.Unlock()
	return s.meta.Apply(ctx, raft.UnlockACME{Name: name, Holder: s.holder})
}
