package peer_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/raft"
)

// fakeLog is a feeder's log: entries 1..len(data) of term 1, of which
// the first `first`-1 are compacted.
type fakeLog struct {
	mu      sync.Mutex
	data    [][]byte
	first   uint64
	change  chan struct{}
	reads   atomic.Int64 // FeedFrom calls that returned entries
	notFeed bool
}

func newFakeLog(n, size int) *fakeLog {
	l := &fakeLog{first: 1, change: make(chan struct{})}
	for range n {
		l.data = append(l.data, bytes.Repeat([]byte{'x'}, size))
	}
	return l
}

func (l *fakeLog) FeedFrom(after uint64, maxEntries, maxBytes int) (raft.IndexTerm, []raft.FeedEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.notFeed {
		return raft.IndexTerm{}, nil, raft.ErrNotFeeder
	}
	if after > 0 && after < l.first {
		return raft.IndexTerm{}, nil, raft.ErrCompacted
	}
	prev := raft.IndexTerm{Index: after}
	if after > 0 {
		prev.Term = 1
	}
	var out []raft.FeedEntry
	size := 0
	for i := after + 1; i <= uint64(len(l.data)) && len(out) < maxEntries; i++ {
		d := l.data[i-1]
		if len(out) > 0 && size+len(d) > maxBytes {
			break
		}
		size += len(d)
		out = append(out, raft.FeedEntry{Index: i, Term: 1, Data: d})
	}
	if len(out) > 0 {
		l.reads.Add(1)
	}
	return prev, out, nil
}

func (l *fakeLog) AppliedIndex() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.data))
}

func (l *fakeLog) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.change
}

func (l *fakeLog) FeedLeader() (string, string) { return "core1", "10.0.0.1:7000" }

// add appends an entry and wakes the streams.
func (l *fakeLog) add(b []byte) {
	l.mu.Lock()
	l.data = append(l.data, b)
	close(l.change)
	l.change = make(chan struct{})
	l.mu.Unlock()
}

func feederServer(t *testing.T, l *fakeLog) string {
	t.Helper()
	srv := httptest.NewServer(peer.NewFeeder("relay1", l))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestLogStreamFramesAndLimits: the stream delivers every entry in order,
// in frames of at most MaxFrameEntries entries and MaxFrameData bytes of
// data (a larger entry alone), then the entries added while it waits.
func TestLogStreamFramesAndLimits(t *testing.T) {
	l := newFakeLog(600, 10)
	big := bytes.Repeat([]byte{'y'}, peer.MaxFrameData/3)
	for range 4 {
		l.data = append(l.data, big)
	}
	url := feederServer(t, l)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	st, err := (&peer.Client{Key: testKey}).Log(ctx, url, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	next := uint64(1)
	read := func(until uint64) {
		t.Helper()
		for next <= until {
			f, err := st.ReadFrame()
			if err != nil {
				t.Fatalf("ReadFrame at %d: %v", next, err)
			}
			if len(f.Entries) == 0 {
				continue // a keep-alive
			}
			data := 0
			for _, e := range f.Entries {
				data += len(e.Data)
			}
			if len(f.Entries) > peer.MaxFrameEntries || (len(f.Entries) > 1 && data > peer.MaxFrameData) {
				t.Errorf("frame of %d entries, %d bytes of data: over the limits", len(f.Entries), data)
			}
			if err := raft.CheckFeed(f.Prev, f.Entries); err != nil || f.Prev.Index != next-1 {
				t.Fatalf("frame after %d does not continue %d: %v", f.Prev.Index, next-1, err)
			}
			if f.Feeder != "relay1" || f.Leader != "core1" {
				t.Errorf("frame names feeder %q leader %q", f.Feeder, f.Leader)
			}
			next = f.Entries[len(f.Entries)-1].Index + 1
		}
	}
	read(604)
	l.add([]byte("new"))
	read(605)
}

// TestLogStreamEncodesOnceForAllStreams: streams waiting at the same index
// share one encoded frame: the log is read once for all of them.
func TestLogStreamEncodesOnceForAllStreams(t *testing.T) {
	l := newFakeLog(5, 10)
	url := feederServer(t, l)
	c := &peer.Client{Key: testKey}
	var streams []*peer.LogStream
	for range 8 {
		st, err := c.Log(t.Context(), url, 5)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		streams = append(streams, st)
	}
	before := l.reads.Load()
	l.add([]byte("x"))
	for _, st := range streams {
		for {
			f, err := st.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Entries) == 1 && f.Entries[0].Index == 6 {
				break
			}
		}
	}
	if got := l.reads.Load() - before; got != 1 {
		t.Errorf("entry 6 read from the log %d times for %d streams at the same index, want once", got, len(streams))
	}
}

// TestLogStreamRefusals: a compacted start is 410 (ErrLogGone), a node
// that does not feed 404, a bad after 400, and streams past
// MaxLogStreams 503.
func TestLogStreamRefusals(t *testing.T) {
	l := newFakeLog(10, 1)
	l.first = 5
	url := feederServer(t, l)
	c := &peer.Client{Key: testKey}
	if _, err := c.Log(t.Context(), url, 2); !errors.Is(err, peer.ErrLogGone) {
		t.Errorf("Log after a compacted entry: %v, want ErrLogGone", err)
	}
	resp, err := http.Get(url + peer.LogPath + "?after=x")
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("after=x: %v %v, want 400", resp.Status, err)
	}
	var open []*peer.LogStream
	for range peer.MaxLogStreams {
		st, err := c.Log(t.Context(), url, 10)
		if err != nil {
			t.Fatalf("stream %d: %v", len(open), err)
		}
		open = append(open, st)
	}
	var perr *peer.Error
	if _, err := c.Log(t.Context(), url, 10); !errors.As(err, &perr) || perr.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("stream past MaxLogStreams: %v, want 503", err)
	}
	for _, st := range open {
		st.Close()
	}
	fed := newFakeLog(1, 1)
	fed.notFeed = true
	if _, err := c.Log(t.Context(), feederServer(t, fed), 0); !errors.As(err, &perr) || perr.StatusCode != http.StatusNotFound {
		t.Errorf("Log from a fed edge: %v, want 404", err)
	}
}

// TestReadFrameRefusesOversize: a frame announced over MaxFrameBytes is
// refused before its body is read.
func TestReadFrameRefusesOversize(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var hdr [4]byte
		binary.BigEndian.PutUint32(hdr[:], peer.MaxFrameBytes+1)
		w.Write(hdr[:])
	}))
	defer srv.Close()
	st, err := (&peer.Client{Key: testKey}).Log(t.Context(), srv.URL, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.ReadFrame(); err == nil {
		t.Error("ReadFrame accepted a frame over MaxFrameBytes")
	}
}
