package rafttest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/raft"
	"github.com/atoll-hosting/atoll/raft/rafttest"
)

// TestOpenApplyDump: the store leads when Open returns, every write moves
// AppliedIndex by one, a rejected write moves it but leaves the dump as it
// was, and an accepted one shows in the dump.
func TestOpenApplyDump(t *testing.T) {
	s := rafttest.Open(t)
	if !s.IsLeader() {
		t.Fatalf("state %s after Open, want Leader", s.State())
	}
	rafttest.Apply(t, s, raft.CreateSite{Name: "blog", Domains: []string{"blog.example.com"}, Created: time.Unix(1, 0).UTC()})
	before, applied := rafttest.Dump(t, s.FSM), s.AppliedIndex()

	err := s.Apply(context.Background(), raft.CreateSite{Name: "blog", Created: time.Unix(2, 0).UTC()})
	if !errors.Is(err, atoll.ErrExists) {
		t.Fatalf("second CreateSite blog: %v, want ErrExists", err)
	}
	if got, want := s.AppliedIndex(), applied+1; got != want {
		t.Errorf("AppliedIndex after a rejected write = %d, want %d", got, want)
	}
	if got := rafttest.Dump(t, s.FSM); got != before {
		t.Errorf("a rejected write changed the dump:\n got %s\nwant %s", got, before)
	}

	rafttest.Apply(t, s, raft.CreateSite{Name: "shop", Created: time.Unix(3, 0).UTC()})
	got := rafttest.Dump(t, s.FSM)
	for _, want := range []string{"site {Name:blog", "domain blog.example.com -> blog", "site {Name:shop"} {
		if !strings.Contains(got, want) {
			t.Errorf("dump lacks %q:\n%s", want, got)
		}
	}
}
