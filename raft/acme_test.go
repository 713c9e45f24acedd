package raft

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
)

// TestACMEStore: values are put, replaced, read with their time, listed
// one level down or recursively, and deleted as a key or a whole folder.
func TestACMEStore(t *testing.T) {
	h := newFSM(t)
	crt := "certificates/ca/a.example.com/a.example.com.crt"
	h.must(
		PutACME{Key: crt, Value: []byte("v1"), Modified: t0},
		PutACME{Key: crt, Value: []byte("v2"), Modified: t0.Add(time.Hour)},
		PutACME{Key: "certificates/ca/a.example.com/a.example.com.key", Value: []byte("sealed"), Modified: t0},
		PutACME{Key: "certificates/ca/b.example.com/b.example.com.crt", Value: []byte("b"), Modified: t0},
		PutACME{Key: "acme/ca/users/ops@example.com/ops.json", Value: []byte("{}"), Modified: t0},
	)
	v, mod, err := h.f.ACMEValue(crt)
	if err != nil || string(v) != "v2" || !mod.Equal(t0.Add(time.Hour)) {
		t.Errorf("ACMEValue = %q, %v, %v; want v2 at t0+1h", v, mod, err)
	}
	if _, _, err := h.f.ACMEValue("certificates/ca"); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("ACMEValue of a folder: %v, want ErrNotFound", err)
	}
	for _, tc := range []struct {
		prefix    string
		recursive bool
		want      []string
		wantOK    bool
	}{
		{"certificates/ca", false, []string{"certificates/ca/a.example.com", "certificates/ca/b.example.com"}, true},
		{"certificates", true, []string{"certificates/ca/a.example.com/a.example.com.crt", "certificates/ca/a.example.com/a.example.com.key",
			"certificates/ca/b.example.com/b.example.com.crt"}, true},
		{"", false, []string{"acme", "certificates"}, true},
		{crt, false, nil, true},
		{"certificates/c", false, nil, false},
	} {
		keys, ok, err := h.f.ACMEKeys(tc.prefix, tc.recursive)
		if err != nil || ok != tc.wantOK || !slices.Equal(keys, tc.want) {
			t.Errorf("ACMEKeys(%q, %v) = %q, %v, %v; want %q, %v", tc.prefix, tc.recursive, keys, ok, err, tc.want, tc.wantOK)
		}
	}

	h.must(DeleteACME{Key: "certificates/ca/a.example.com"})
	if keys, _, _ := h.f.ACMEKeys("certificates", true); !slices.Equal(keys, []string{"certificates/ca/b.example.com/b.example.com.crt"}) {
		t.Errorf("after deleting a folder: %q left, want only b's certificate", keys)
	}
	h.must(DeleteACME{Key: "certificates/ca/b.example.com/b.example.com.crt"})
	if err := h.apply(DeleteACME{Key: "certificates/ca/b.example.com"}); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("deleting nothing: %v, want ErrNotFound", err)
	}
}

func TestACMEStoreRefuses(t *testing.T) {
	h := newFSM(t)
	for _, tc := range []struct {
		name string
		cmd  Command
		want error
	}{
		{"empty key", PutACME{Key: ""}, atoll.ErrInvalid},
		{"dot-dot segment", PutACME{Key: "certificates/../x"}, atoll.ErrInvalid},
		{"leading slash", PutACME{Key: "/x"}, atoll.ErrInvalid},
		{"space", PutACME{Key: "a b"}, atoll.ErrInvalid},
		{"long key", PutACME{Key: strings.Repeat("k", MaxACMEKey+1)}, atoll.ErrInvalid},
		{"big value", PutACME{Key: "k", Value: make([]byte, MaxACMEValue+1)}, atoll.ErrInvalid},
		{"lock without holder", LockACME{Name: "l", At: t0, TTL: time.Minute}, atoll.ErrInvalid},
		{"lock too long", LockACME{Name: "l", Holder: "n1", At: t0, TTL: MaxACMELock + time.Second}, atoll.ErrInvalid},
	} {
		if err := h.apply(tc.cmd); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestACMELock: one holder at a time; the holder extends it; another
// takes it once it expired (by the command's clock) or was released; an
// unlock by someone else changes nothing.
func TestACMELock(t *testing.T) {
	h := newFSM(t)
	const name = "issue_cert_a.example.com"
	h.must(LockACME{Name: name, Holder: "n1", At: t0, TTL: time.Minute})
	if err := h.apply(LockACME{Name: name, Holder: "n2", At: t0.Add(30 * time.Second), TTL: time.Minute}); !errors.Is(err, atoll.ErrConflict) {
		t.Fatalf("second holder while held: %v, want ErrConflict", err)
	}
	h.must(LockACME{Name: name, Holder: "n1", At: t0.Add(50 * time.Second), TTL: time.Minute}) // extends to t0+110s
	if err := h.apply(LockACME{Name: name, Holder: "n2", At: t0.Add(100 * time.Second), TTL: time.Minute}); !errors.Is(err, atoll.ErrConflict) {
		t.Fatalf("second holder before the extended expiry: %v, want ErrConflict", err)
	}
	h.must(UnlockACME{Name: name, Holder: "n2"}) // not n2's: nothing
	if l, ok, err := h.f.ACMELockOf(name); err != nil || !ok || l.Holder != "n1" || !l.Expires.Equal(t0.Add(110*time.Second)) {
		t.Fatalf("ACMELockOf = %+v, %v, %v; want n1 until t0+110s", l, ok, err)
	}
	h.must(LockACME{Name: name, Holder: "n2", At: t0.Add(110 * time.Second), TTL: time.Minute}) // expired: n2 takes it
	h.must(UnlockACME{Name: name, Holder: "n2"})
	if _, ok, _ := h.f.ACMELockOf(name); ok {
		t.Fatal("lock still held after its holder released it")
	}
	h.must(LockACME{Name: name, Holder: "n3", At: t0, TTL: time.Minute})
}
