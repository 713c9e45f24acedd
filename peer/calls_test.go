package peer_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/raft"
)

func TestErrorMatchesItsSentinels(t *testing.T) {
	t.Parallel()
	all := []error{atoll.ErrNotFound, atoll.ErrExists, atoll.ErrConflict, atoll.ErrInvalid,
		blobstore.ErrNotFound, blobstore.ErrNoSpace, raft.ErrNotLeader, raft.ErrUnknownCommand}
	tests := []struct {
		name   string
		status int
		kind   string
		want   []error
	}{
		{"404", http.StatusNotFound, "", []error{atoll.ErrNotFound, blobstore.ErrNotFound}},
		{"409", http.StatusConflict, "", []error{atoll.ErrConflict}},
		{"400", http.StatusBadRequest, "", []error{atoll.ErrInvalid}},
		{"507", http.StatusInsufficientStorage, "", []error{blobstore.ErrNoSpace}},
		{"403", http.StatusForbidden, "", nil},
		{"500", http.StatusInternalServerError, "", nil},
		{"409 kind exists", http.StatusConflict, "exists", []error{atoll.ErrExists}},
		{"503 kind not_leader", http.StatusServiceUnavailable, "not_leader", []error{raft.ErrNotLeader}},
		{"400 kind unknown", http.StatusBadRequest, "unknown", []error{raft.ErrUnknownCommand}},
		{"404 kind not_found", http.StatusNotFound, "not_found", []error{atoll.ErrNotFound}},
		{"kind from a newer node", http.StatusConflict, "mystery", []error{atoll.ErrConflict}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := fmt.Errorf("call: %w", &peer.Error{StatusCode: tc.status, Kind: tc.kind, Message: "m"})
			for _, s := range all {
				want := false
				for _, w := range tc.want {
					want = want || w == s
				}
				if got := errors.Is(err, s); got != want {
					t.Errorf("errors.Is(%v, %q) = %v, want %v", err, s, got, want)
				}
			}
		})
	}
}

func TestApplyKeepsTheLeadersRejection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		status  int
		err     error // what the leader's state machine said
		want    error
		wantMsg string
	}{
		{"exists", http.StatusConflict, fmt.Errorf("site demo: %w", atoll.ErrExists), atoll.ErrExists, "already exists: site demo: already exists"},
		{"not leader", http.StatusServiceUnavailable, raft.ErrNotLeader, raft.ErrNotLeader, "not the raft leader: not the raft leader"},
		{"no kind", http.StatusInternalServerError, errors.New("disk on fire"), nil, "disk on fire"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != peer.ApplyPath || !peer.KeyOK(r, testKey) {
					t.Errorf("apply sent %s %s, key ok %v", r.Method, r.URL.Path, peer.KeyOK(r, testKey))
				}
				peer.WriteError(w, tc.status, tc.err)
			}))
			defer srv.Close()
			_, err := peer.New(testKey).Apply(t.Context(), srv.URL, raft.DeleteSite{Name: "demo"})
			if err == nil {
				t.Fatal("Apply of a rejected command: no error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
			var pe *peer.Error
			if tc.want == nil && (!errors.As(err, &pe) || pe.StatusCode != tc.status || pe.Message != tc.wantMsg) {
				t.Errorf("err %#v, want an Error %d %q", err, tc.status, tc.wantMsg)
			}
			if tc.want != nil && err.Error() != tc.wantMsg {
				t.Errorf("message %q, want %q", err, tc.wantMsg)
			}
		})
	}
}

func TestCallsToAnAbsentPeerAreUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c := peer.New(testKey)
	calls := map[string]error{
		"Apply": func() error { _, err := c.Apply(t.Context(), url, raft.DeleteSite{Name: "demo"}); return err }(),
		"Stats": func() error { _, err := c.Stats(t.Context(), url); return err }(),
		"Has":   func() error { _, err := c.Has(t.Context(), url, []string{hashOf(nil)}); return err }(),
		"Join":  c.Join(t.Context(), url, atoll.JoinRequest{ID: "n2"}),
	}
	for name, err := range calls {
		var pe *peer.Error
		if !errors.Is(err, peer.ErrUnreachable) || errors.As(err, &pe) {
			t.Errorf("%s to a closed port: %v, want ErrUnreachable", name, err)
		}
	}
}

func TestJSONCalls(t *testing.T) {
	t.Parallel()
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI())
		switch r.URL.Path {
		case peer.StatsPath:
			builder.WriteJSON(w, http.StatusOK, peer.Stats{ID: "n2", CommitIndex: 7})
		case peer.FetchPath:
			builder.WriteJSON(w, http.StatusOK, peer.FetchResponse{Fetched: 2, Failed: 1})
		case peer.ScrubPath:
			builder.WriteJSON(w, http.StatusAccepted, atoll.ScrubStatus{Running: true})
		case peer.JoinPath:
			w.WriteHeader(http.StatusCreated)
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	defer srv.Close()
	c := peer.New(testKey)
	ctx := t.Context()
	h := hashOf([]byte("x"))

	if st, err := c.Stats(ctx, srv.URL); err != nil || st.ID != "n2" || st.CommitIndex != 7 {
		t.Errorf("Stats = %+v, %v", st, err)
	}
	if out, err := c.Pull(ctx, srv.URL, []string{h}); err != nil || out != (peer.FetchResponse{Fetched: 2, Failed: 1}) {
		t.Errorf("Pull = %+v, %v", out, err)
	}
	if err := c.Verify(ctx, srv.URL, []string{h}); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if st, err := c.Scrub(ctx, http.MethodPost, srv.URL, 5*time.Second); err != nil || !st.Running {
		t.Errorf("Scrub = %+v, %v", st, err)
	}
	if err := c.Join(ctx, srv.URL+"/", atoll.JoinRequest{ID: "n2"}); err != nil {
		t.Errorf("Join: %v", err)
	}
	want := []string{"GET /v1/peer/stats", "POST /v1/peer/fetch", "POST /v1/peer/verify", "POST /v1/peer/scrub?wait=5s", "POST /v1/nodes"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("requests %q, want %q", got, want)
	}
}

func TestRetry(t *testing.T) {
	t.Parallel()
	errBusy := errors.New("busy")
	errFatal := errors.New("fatal")
	b := peer.Backoff{First: time.Microsecond, Max: 4 * time.Microsecond}
	retryable := func(err error) bool { return errors.Is(err, errBusy) }
	tests := []struct {
		name      string
		answers   []error // of each attempt; the last repeats
		cancelled bool    // ctx ends after the third attempt
		want      error
		attempts  int
	}{
		{"first try", []error{nil}, false, nil, 1},
		{"after two busy", []error{errBusy, errBusy, nil}, false, nil, 3},
		{"not retryable", []error{errBusy, errFatal}, false, errFatal, 2},
		{"busy until ctx ends", []error{errBusy}, true, errBusy, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			attempts := 0
			err := b.Retry(ctx, retryable, func(context.Context) error {
				attempts++
				if tc.cancelled && attempts == 3 {
					cancel()
				}
				return tc.answers[min(attempts, len(tc.answers))-1]
			})
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("Retry = %v, want %v", err, tc.want)
			}
			if attempts != tc.attempts {
				t.Errorf("%d attempts, want %d", attempts, tc.attempts)
			}
		})
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Retry(ctx, retryable, func(context.Context) error { t.Error("try ran after ctx ended"); return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Retry with an ended ctx = %v, want context.Canceled", err)
	}
}

// TestBinaryOnTheWire: every call announces the caller's binary, which
// SenderBinary reads back; stats from a node of before feature levels (no
// version, no level) read as level 1, version unknown.
func TestBinaryOnTheWire(t *testing.T) {
	t.Parallel()
	type sender struct {
		version string
		level   int
	}
	got := make(chan sender, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, l := peer.SenderBinary(r)
		got <- sender{v, l}
		fmt.Fprint(w, `{"id":"old-1","raft_state":"Follower","applied_index":7,"commit_index":7}`)
	}))
	defer srv.Close()
	c := peer.New("key")
	c.Version = "0.11.0+abc"
	st, err := c.Stats(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != (sender{"0.11.0+abc", atoll.MaxFeatureLevel}) {
		t.Errorf("the peer read the caller as %+v, want version 0.11.0+abc level %d", s, atoll.MaxFeatureLevel)
	}
	if v, l := st.Binary(); v != "" || l != atoll.LevelBase {
		t.Errorf("stats of an old node: version %q level %d, want none and %d", v, l, atoll.LevelBase)
	}
	req := httptest.NewRequest(http.MethodPost, peer.JoinPath, nil) // an old node's join: no headers
	if v, l := peer.SenderBinary(req); v != "" || l != atoll.LevelBase {
		t.Errorf("a request without the headers: version %q level %d, want none and %d", v, l, atoll.LevelBase)
	}
}
