package raft

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll"

	bolt "go.etcd.io/bbolt"
)

// The ACME store: what an ACME client keeps (account keys and
// registrations, issued certificates and their keys, challenge tokens,
// order state), replicated so that every node can answer a challenge and
// serve a certificate any node obtained, and its locks, so that exactly
// one node orders a certificate for a name at a time.
//
// It is a small key-value store with slash-separated keys ("certificates/
// <ca>/<name>/<name>.crt"), the shape ACME client libraries' storage
// interfaces expect. The FSM checks sizes and names only: what a value
// means is the client's business. Private keys are sealed by the proposer
// (SealCertKey, with the key's name as the domain) before they are
// proposed, so the log, the state and snapshots never hold one in clear.
//
// Every command here needs atoll.LevelFeatureLevels: a node below it stops
// applying at the first one (ErrNeedsUpgrade), so a leader writes none
// before the cluster has reached it.

// Bounds of the ACME store.
const (
	MaxACMEKey   = 1024     // bytes of one key
	MaxACMEValue = 64 << 10 // bytes of one value (a certificate chain is a few KiB)
	MaxACMEKeys  = 100_000  // keys in the store: ~10 per name, for every custom domain of every site
	MaxACMELock  = time.Hour

	maxACMEHolder = 256 // bytes of a lock holder's name
)

// Buckets of the ACME store. Part of the on-disk and snapshot format.
var (
	bucketACME      = []byte("acme")       // key -> acmeRecord JSON
	bucketACMELocks = []byte("acme_locks") // lock name -> ACMELock JSON
)

// acmeRecord is one value of the ACME store.
type acmeRecord struct {
	Value    []byte    `json:"value"`
	Modified time.Time `json:"modified"`
}

// ACMELock is who holds a lock of the ACME store, and until when.
type ACMELock struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

// PutACME stores (or replaces) a value of the ACME store. Modified is the
// proposer's clock, recorded as the value's modification time. The same
// command twice has the effect of once.
type PutACME struct {
	Key      string    `json:"key"`
	Value    []byte    `json:"value"`
	Modified time.Time `json:"modified"`
}

// DeleteACME removes Key and every key under Key + "/": ErrNotFound when
// there is none.
type DeleteACME struct {
	Key string `json:"key"`
}

// LockACME takes lock Name for Holder until At + TTL (at most
// MaxACMELock), when it is free, expired at At (the proposer's clock,
// recorded in the command so that every node decides alike), or already
// Holder's (which extends it). Otherwise it fails with ErrConflict and
// the holder keeps it: the proposer waits and tries again.
type LockACME struct {
	Name   string        `json:"name"`
	Holder string        `json:"holder"`
	At     time.Time     `json:"at"`
	TTL    time.Duration `json:"ttl"`
}

// UnlockACME releases lock Name if Holder holds it; otherwise it does
// nothing (the lock expired and went to another holder, or was released).
type UnlockACME struct {
	Name   string `json:"name"`
	Holder string `json:"holder"`
}

func (PutACME) Type() CommandType    { return CmdPutACME }
func (DeleteACME) Type() CommandType { return CmdDeleteACME }
func (LockACME) Type() CommandType   { return CmdLockACME }
func (UnlockACME) Type() CommandType { return CmdUnlockACME }

// checkACMEKey accepts a key of the ACME store: 1 to MaxACMEKey bytes of
// printable ASCII, no empty, "." or ".." segment, no leading or trailing
// slash.
func checkACMEKey(key string) error {
	if key == "" || len(key) > MaxACMEKey {
		return fmt.Errorf("%w: ACME key of %d bytes: want 1 to %d", atoll.ErrInvalid, len(key), MaxACMEKey)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%w: ACME key %q: printable ASCII without spaces only", atoll.ErrInvalid, atoll.Truncate(key, 80))
		}
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: ACME key %q: empty, \".\" or \"..\" segment", atoll.ErrInvalid, atoll.Truncate(key, 80))
		}
	}
	return nil
}

func (a *applier) putACME(c PutACME) error {
	if err := checkACMEKey(c.Key); err != nil {
		return err
	}
	if len(c.Value) > MaxACMEValue {
		return fmt.Errorf("%w: ACME value %q of %d bytes, at most %d", atoll.ErrInvalid, atoll.Truncate(c.Key, 80), len(c.Value), MaxACMEValue)
	}
	b := a.bucket(bucketACME)
	if b.Get([]byte(c.Key)) == nil && b.Stats().KeyN >= MaxACMEKeys {
		return fmt.Errorf("%w: the ACME store holds %d keys, at most %d", atoll.ErrConflict, MaxACMEKeys, MaxACMEKeys)
	}
	return a.put(bucketACME, c.Key, acmeRecord{Value: c.Value, Modified: c.Modified})
}

func (a *applier) deleteACME(c DeleteACME) error {
	if err := checkACMEKey(c.Key); err != nil {
		return err
	}
	b := a.bucket(bucketACME)
	var keys [][]byte
	if b.Get([]byte(c.Key)) != nil {
		keys = append(keys, []byte(c.Key))
	}
	prefix := []byte(c.Key + "/")
	cur := b.Cursor()
	for k, _ := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = cur.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: ACME key %q", atoll.ErrNotFound, atoll.Truncate(c.Key, 80))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) lockACME(c LockACME) error {
	if err := checkACMEKey(c.Name); err != nil {
		return err
	}
	if c.Holder == "" || len(c.Holder) > maxACMEHolder || c.TTL <= 0 || c.TTL > MaxACMELock {
		return fmt.Errorf("%w: ACME lock %q: want a holder and a TTL up to %v", atoll.ErrInvalid, atoll.Truncate(c.Name, 80), MaxACMELock)
	}
	held, ok, err := getACMELock(a.tx, c.Name)
	if err != nil {
		return err
	}
	if ok && held.Holder != c.Holder && c.At.Before(held.Expires) {
		return fmt.Errorf("%w: ACME lock %q is held by %s until %s", atoll.ErrConflict, atoll.Truncate(c.Name, 80),
			held.Holder, held.Expires.Format(time.RFC3339))
	}
	return a.put(bucketACMELocks, c.Name, ACMELock{Holder: c.Holder, Expires: c.At.Add(c.TTL)})
}

func (a *applier) unlockACME(c UnlockACME) error {
	held, ok, err := getACMELock(a.tx, c.Name)
	if err != nil || !ok || held.Holder != c.Holder {
		return err
	}
	return a.bucket(bucketACMELocks).Delete([]byte(c.Name))
}

func getACMELock(tx *bolt.Tx, name string) (ACMELock, bool, error) {
	b := tx.Bucket(bucketACMELocks)
	if b == nil {
		return ACMELock{}, false, nil
	}
	v := b.Get([]byte(name))
	if v == nil {
		return ACMELock{}, false, nil
	}
	var l ACMELock
	if err := json.Unmarshal(v, &l); err != nil {
		return ACMELock{}, false, fmt.Errorf("decode ACME lock %q: %w", name, err)
	}
	return l, true, nil
}

// ACMEValue returns a value of the ACME store and when it was written, or
// an error wrapping ErrNotFound.
func (f *FSM) ACMEValue(key string) ([]byte, time.Time, error) {
	var rec acmeRecord
	var found bool
	err := f.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketACME)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(key))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		return nil, time.Time{}, err
	}
	if !found {
		return nil, time.Time{}, fmt.Errorf("%w: ACME key %q", atoll.ErrNotFound, atoll.Truncate(key, 80))
	}
	return rec.Value, rec.Modified, nil
}

// ACMEKeys returns the keys under prefix + "/" in order: all of them when
// recursive, else the names one level down (a deeper key counts as its
// first segment, once). ok is false when prefix is neither a key nor has
// keys under it.
func (f *FSM) ACMEKeys(prefix string, recursive bool) (keys []string, ok bool, err error) {
	err = f.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketACME)
		if b == nil {
			return nil
		}
		ok = b.Get([]byte(prefix)) != nil
		p := []byte(prefix + "/")
		if prefix == "" {
			p = nil
		}
		cur := b.Cursor()
		for k, _ := cur.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = cur.Next() {
			ok = true
			rest := string(k[len(p):])
			if !recursive {
				if i := strings.IndexByte(rest, '/'); i >= 0 {
					rest = rest[:i]
				}
			}
			name := string(p) + rest
			if len(keys) == 0 || keys[len(keys)-1] != name {
				keys = append(keys, name)
			}
		}
		return nil
	})
	return keys, ok, err
}

// ACMELockOf returns who holds lock name and until when; ok is false when
// nobody ever took it or it was released (an expired lock is returned as
// it is: the caller compares Expires with its clock).
func (f *FSM) ACMELockOf(name string) (l ACMELock, ok bool, err error) {
	err = f.view(func(tx *bolt.Tx) error {
		l, ok, err = getACMELock(tx, name)
		return err
	})
	return l, ok, err
}
