package raft

import (
	"sync"

	hraft "github.com/hashicorp/raft"
)

// publishedFeedMax bounds the deploy ids the feed keeps: a reader that
// falls further behind rescans the sites.
const publishedFeedMax = 4096

// PublishCursor is a position in the feed of published deploys (see
// PublishedSince). The zero cursor is before the start: its first read
// asks for a rescan.
type PublishCursor struct {
	epoch uint64 // publishedFeed.epoch when taken
	seq   uint64 // ids appended to the feed before it
}

// publishedFeed is an in-memory list of the deploys that applied Publish
// commands made live, in log order. It is not part of the state: it starts
// empty at every open and is emptied by a restore (a new epoch), so a
// reader must be able to rescan (Sites) when told to.
type publishedFeed struct {
	mu    sync.Mutex
	epoch uint64   // starts at 1; incremented by reset
	seq   uint64   // ids ever appended in this epoch
	ids   []string // the last ones, at most publishedFeedMax
}

// record appends the deploys of the Publish commands among logs that were
// applied (response nil, before the halted entry when halted >= 0).
// Decoding Publish is cheap; other entries are skipped on their type byte.
func (p *publishedFeed) record(logs []*hraft.Log, resp []any, halted int) {
	var ids []string
	for i, l := range logs {
		if halted >= 0 && i >= halted {
			break
		}
		if l.Type != hraft.LogCommand || len(l.Data) < 2 || CommandType(l.Data[1]) != CmdPublish || resp[i] != nil {
			continue
		}
		if cmd, err := Decode(l.Data); err == nil {
			ids = append(ids, cmd.(Publish).Deploy)
		}
	}
	if len(ids) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epoch == 0 {
		p.epoch = 1
	}
	p.ids = append(p.ids, ids...)
	p.seq += uint64(len(ids))
	if n := len(p.ids); n > publishedFeedMax {
		p.ids = append(p.ids[:0:0], p.ids[n-publishedFeedMax:]...)
	}
}

// reset starts a new epoch: every reader rescans.
func (p *publishedFeed) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.epoch = max(p.epoch, 1) + 1
	p.seq, p.ids = 0, nil
}

// PublishedSince returns the deploys made live by the Publish commands
// applied after cursor c, in log order, and the cursor to pass next time.
// When ok is false the feed cannot say (a zero cursor, a restore since, or
// more publishes since than it keeps): the caller finds the live deploys
// by reading every site, from which the returned cursor continues. An edge
// prefetches new publishes through it without reading 100,000 site
// records after every applied batch. A deploy in the list may have been
// superseded or pruned since.
func (f *FSM) PublishedSince(c PublishCursor) (ids []string, next PublishCursor, ok bool) {
	p := &f.published
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epoch == 0 {
		p.epoch = 1
	}
	next = PublishCursor{epoch: p.epoch, seq: p.seq}
	if c.epoch != p.epoch || c.seq > p.seq || p.seq-c.seq > uint64(len(p.ids)) {
		return nil, next, false
	}
	return append([]string(nil), p.ids[uint64(len(p.ids))-(p.seq-c.seq):]...), next, true
}
