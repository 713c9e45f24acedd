package peer

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll/raft"

	"golang.org/x/sync/singleflight"
)

// Paths of the feed (docs/FANOUT.md): a feeder streams the committed log
// to the fed edges that follow it, and hands them its state when they
// are too far behind.
const (
	LogPath      = "/v1/peer/log"      // GET ?after=N: a stream of LogFrames
	SnapshotPath = "/v1/peer/snapshot" // GET: the feeder's state, as GET /v1/snapshot
)

// Limits of the feed. A feeder never sends a frame of more than
// MaxFrameEntries entries or MaxFrameData bytes of entry data (except one
// entry alone, which raft.MaxCommandBytes bounds), and serves at most
// MaxLogStreams streams at once (503 beyond); a fed edge refuses a frame
// whose encoding exceeds MaxFrameBytes. LogKeepAlive is the feeder's
// keep-alive period; a fed edge that hears nothing for LogSilence drops
// the stream and moves to its next feeder.
const (
	MaxFrameEntries = 256
	MaxFrameData    = 2 << 20
	MaxFrameBytes   = 4 << 20
	MaxLogStreams   = 64
	LogKeepAlive    = time.Second
	LogSilence      = 3 * time.Second
)

// ErrLogGone: the feeder's log no longer holds the entry the stream was
// to start after (410): load its snapshot (Client.Snapshot), then stream
// from the snapshot's index.
var ErrLogGone = errors.New("the feeder compacted its log past the requested index")

// LogFrame is one frame of a log stream: the entries after Prev (none in
// a keep-alive), with what the feeder knows of the cluster. On the wire
// each frame is a 4-byte big-endian length and that many bytes of JSON.
type LogFrame struct {
	Prev    raft.IndexTerm   `json:"prev"`
	Entries []raft.FeedEntry `json:"entries,omitempty"`
	Applied uint64           `json:"applied"` // the feeder's applied index
	Feeder  string           `json:"feeder"`  // the feeder's node id
	Leader  string           `json:"leader_id,omitempty"`
	Addr    string           `json:"leader_addr,omitempty"`
}

// Feed returns what the fed edge's raft.Store.ApplyFeed takes.
func (f LogFrame) Feed() raft.Feed {
	return raft.Feed{Prev: f.Prev, Entries: f.Entries, Commit: f.Applied, LeaderID: f.Leader, LeaderAddr: f.Addr}
}

// FeedSource is what a feeder streams from: its raft.Store.
type FeedSource interface {
	FeedFrom(after uint64, maxEntries, maxBytes int) (raft.IndexTerm, []raft.FeedEntry, error)
	AppliedIndex() uint64
	Changed() <-chan struct{}
	FeedLeader() (id, addr string)
}

// Feeder serves LogPath. Every frame is encoded once for all the streams
// that wait at the same index, and the streams are bounded by
// MaxLogStreams.
type Feeder struct {
	src   FeedSource
	id    string
	slots chan struct{}

	mu     sync.Mutex
	frames map[uint64]encodedFrame // by the index the frame starts after
	size   int                     // bytes in frames
	flight singleflight.Group      // reads in progress, by start index
}

// encodedFrame is a frame with entries, encoded, valid while the feeder's
// applied index is still applied.
type encodedFrame struct {
	applied uint64
	last    raft.IndexTerm // the frame's last entry
	b       []byte
}

// maxCachedBytes bounds the frames Feeder.frames holds; past it the
// cache starts empty again.
const maxCachedBytes = 4 * MaxFrameBytes

// NewFeeder returns the feeder of node id reading src.
func NewFeeder(id string, src FeedSource) *Feeder {
	return &Feeder{src: src, id: id, slots: make(chan struct{}, MaxLogStreams), frames: make(map[uint64]encodedFrame)}
}

// ServeHTTP answers GET LogPath?after=N: 200 and frames until the client
// goes or ctx ends; 410 when entry N is no longer in the log; 404 on a
// node that does not feed (a fed edge); 503 when MaxLogStreams are open.
func (fd *Feeder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	after, err := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	if err != nil {
		WriteError(w, http.StatusBadRequest, fmt.Errorf("after=%q: want the index of the last entry the node holds", r.URL.Query().Get("after")))
		return
	}
	select {
	case fd.slots <- struct{}{}:
		defer func() { <-fd.slots }()
	default:
		w.Header().Set("Retry-After", "1")
		WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("this feeder serves %d log streams already: follow another node", MaxLogStreams))
		return
	}
	first, pos, err := fd.next(after)
	switch {
	case errors.Is(err, raft.ErrNotFeeder):
		WriteError(w, http.StatusNotFound, err)
		return
	case errors.Is(err, raft.ErrCompacted):
		WriteError(w, http.StatusGone, fmt.Errorf("%w: load GET %s, then stream from its index", err, SnapshotPath))
		return
	case err != nil:
		WriteError(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := http.NewResponseController(w).Flush(); err != nil { // the header now, not with the first frame
		return
	}
	fd.stream(r.Context(), w, first, pos)
}

// stream writes first, then every new batch of entries as it is applied
// and a keep-alive each LogKeepAlive without one, until a write fails or
// ctx ends.
func (fd *Feeder) stream(ctx context.Context, w http.ResponseWriter, frame []byte, pos raft.IndexTerm) {
	rc := http.NewResponseController(w)
	tick := time.NewTicker(LogKeepAlive)
	defer tick.Stop()
	for {
		if frame != nil {
			if _, err := w.Write(frame); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			tick.Reset(LogKeepAlive)
		}
		changed := fd.src.Changed()
		var err error
		if frame, pos, err = fd.next(pos.Index); err != nil {
			return // compacted under a slow stream, or closing: the client starts again
		}
		if frame != nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
			if frame, pos, err = fd.next(pos.Index); err == nil && frame == nil {
				frame = fd.keepAlive(pos)
			} else if err != nil {
				return
			}
		}
	}
}

// next returns the frame of the entries after index after (nil when
// there are none yet), and the position the stream reaches with it. The
// streams that ask for the same index at once share one read and one
// encoding (flight), and later ones the cached frame while the applied
// index has not moved.
func (fd *Feeder) next(after uint64) ([]byte, raft.IndexTerm, error) {
	if c, ok := fd.cached(after); ok {
		return c.b, c.last, nil
	}
	v, err, _ := fd.flight.Do(strconv.FormatUint(after, 10), func() (any, error) {
		if c, ok := fd.cached(after); ok {
			return c, nil
		}
		return fd.read(after)
	})
	if err != nil {
		return nil, raft.IndexTerm{}, err
	}
	c := v.(encodedFrame)
	return c.b, c.last, nil
}

// cached returns the cached frame after index after, if it is current.
func (fd *Feeder) cached(after uint64) (encodedFrame, bool) {
	applied := fd.src.AppliedIndex()
	fd.mu.Lock()
	defer fd.mu.Unlock()
	c, ok := fd.frames[after]
	return c, ok && c.applied == applied
}

// read reads and encodes the frame after index after, and caches it; a
// frame without entries (b nil) is not cached.
func (fd *Feeder) read(after uint64) (encodedFrame, error) {
	applied := fd.src.AppliedIndex()
	prev, entries, err := fd.src.FeedFrom(after, MaxFrameEntries, MaxFrameData)
	if err != nil || len(entries) == 0 {
		return encodedFrame{last: prev}, err
	}
	id, addr := fd.src.FeedLeader()
	b, err := EncodeFrame(LogFrame{Prev: prev, Entries: entries, Applied: applied, Feeder: fd.id, Leader: id, Addr: addr})
	if err != nil {
		return encodedFrame{}, err
	}
	e := entries[len(entries)-1]
	last := raft.IndexTerm{Index: e.Index, Term: e.Term}
	fd.mu.Lock()
	if fd.size+len(b) > maxCachedBytes {
		clear(fd.frames)
		fd.size = 0
	}
	c := encodedFrame{applied: applied, last: last, b: b}
	fd.frames[after] = c
	fd.size += len(b)
	fd.mu.Unlock()
	return c, nil
}

// keepAlive encodes a frame without entries at pos.
func (fd *Feeder) keepAlive(pos raft.IndexTerm) []byte {
	id, addr := fd.src.FeedLeader()
	b, _ := EncodeFrame(LogFrame{Prev: pos, Applied: fd.src.AppliedIndex(), Feeder: fd.id, Leader: id, Addr: addr})
	return b
}

// EncodeFrame returns f on the wire: length, then JSON.
func EncodeFrame(f LogFrame) ([]byte, error) {
	js, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	if len(js) > MaxFrameBytes {
		return nil, fmt.Errorf("log frame of %d bytes exceeds %d", len(js), MaxFrameBytes)
	}
	b := make([]byte, 4, 4+len(js))
	binary.BigEndian.PutUint32(b, uint32(len(js)))
	return append(b, js...), nil
}

// LogStream reads the frames of a log stream.
type LogStream struct {
	body io.ReadCloser
	r    *bufio.Reader
}

// ReadFrame reads the next frame; a frame announced over MaxFrameBytes
// is an error and nothing of it is read.
func (s *LogStream) ReadFrame() (LogFrame, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(s.r, hdr[:]); err != nil {
		return LogFrame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrameBytes {
		return LogFrame{}, fmt.Errorf("log frame of %d bytes exceeds %d", n, MaxFrameBytes)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(s.r, buf); err != nil {
		return LogFrame{}, fmt.Errorf("log frame: %w", err)
	}
	var f LogFrame
	if err := json.Unmarshal(buf, &f); err != nil {
		return LogFrame{}, fmt.Errorf("log frame: %w", err)
	}
	if len(f.Entries) > MaxFrameEntries {
		return LogFrame{}, fmt.Errorf("log frame of %d entries exceeds %d", len(f.Entries), MaxFrameEntries)
	}
	return f, nil
}

// Close ends the stream.
func (s *LogStream) Close() error { return s.body.Close() }

// Log opens the log stream of the feeder at baseURL from the entry after
// index after. A feeder whose log no longer holds entry after answers 410:
// ErrLogGone. ctx bounds the whole stream.
func (c *Client) Log(ctx context.Context, baseURL string, after uint64) (*LogStream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint(baseURL, LogPath)+"?after="+strconv.FormatUint(after, 10), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(c.blobs(), req)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.StatusCode == http.StatusGone {
			return nil, fmt.Errorf("%w: %w", ErrLogGone, err)
		}
		return nil, err
	}
	return &LogStream{body: resp.Body, r: bufio.NewReaderSize(resp.Body, 64<<10)}, nil
}

// Snapshot opens the state of the feeder at baseURL (SnapshotPath), in
// the format raft.Store.RestoreFeed reads. The caller closes it.
func (c *Client) Snapshot(ctx context.Context, baseURL string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint(baseURL, SnapshotPath), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(c.blobs(), req)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
