package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/serve"
)

// Streaming. A node whose disk is below its reserve (diskLow) can neither
// keep a copy of a blob it lacks nor, past passThroughMax, hold it in
// memory; it serves such a blob by streaming it from a source (its owners
// in placement order, then any node) to the visitor, stored nowhere
// (peer.Client.Stream). A range is streamed alike (serveBlobs.OpenSection).
//
// The bytes are checked against the hash on the way: the section's last
// byte is held back until the whole blob was read and matched, so a
// mismatch ends the answer short of its Content-Length (the visitor's
// client reports a failed download) instead of completing it with bad
// bytes, and the source is told to check its copy. Checking before the
// first byte goes out would mean holding the blob (the disk is full, and
// memory is what passThroughMax bounds), and the source does not verify
// what it exports (blobstore.Store.Export), so the check is the reader's.
//
// At most streamSlots blobs stream through a node at once, each for at
// most streamMaxDuration; a request past the slots is answered 503. Each
// stream holds a pipe and a copy buffer, not the blob.
const (
	streamSlots       = 16
	streamMaxDuration = 10 * time.Minute
)

// streamBlob returns bytes [start, start+length) of blob hash's identity
// bytes (length < 0: to its end), read from the first source that has
// it, and the blob's size. The caller closes the reader, which frees its
// slot.
func (n *Node) streamBlob(hash string, start, length int64) (io.ReadCloser, int64, error) {
	select {
	case n.streaming <- struct{}{}:
	default:
		return nil, 0, fmt.Errorf("blob %s: %w: %d blobs already stream through node %s, whose disk is full", hash, builder.ErrUnavailable, streamSlots, n.cfg.ID)
	}
	// The reader outlives the request that opened it (the edge writes the
	// body after its handler returned): bounded by the node's life and
	// streamMaxDuration instead.
	ctx, cancel := context.WithTimeout(n.ctx, streamMaxDuration)
	var errs []error
	for _, src := range n.placement().Sources(hash, n.cfg.ID) {
		size, r, err := n.peer.Stream(ctx, n.peerURL(src.APIAddr), hash, start, length)
		if err == nil {
			return &streamed{n: n, r: r, src: src, hash: hash, cancel: cancel}, size, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", src.ID, err))
		if ctx.Err() != nil {
			break
		}
	}
	cancel()
	<-n.streaming
	return nil, 0, fmt.Errorf("blob %s: %w: no source streamed it (%v)", hash, blobstore.ErrNotFound, errors.Join(errs...))
}

// streamed is a blob being streamed from src; closing it frees its slot.
type streamed struct {
	n      *Node
	r      io.ReadCloser
	src    atoll.Node
	hash   string
	cancel context.CancelFunc
	once   sync.Once
}

func (s *streamed) Read(p []byte) (int, error) {
	k, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.n.log.Warn("stream blob", "blob", s.hash, "from", s.src.ID, "err", err)
		if errors.Is(err, blobstore.ErrHashMismatch) {
			s.n.reportCorrupt(s.src, s.hash)
		}
	}
	return k, err
}

func (s *streamed) Close() error {
	err := s.r.Close()
	s.once.Do(func() {
		s.cancel()
		<-s.n.streaming
	})
	return err
}

// pipeFile returns the read end of a pipe fed with r's bytes, for the
// edge's Open (which hands out files). A failure of r closes the pipe
// early, so the reader sees the body end short.
func (n *Node) pipeFile(r io.ReadCloser) (*os.File, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		r.Close()
		return nil, err
	}
	n.wg.Go(func() {
		// A reader that stops reading (the visitor left, or never came)
		// leaves the copy blocked in Write: closing the pipe at shutdown
		// ends it; the edge closes pr once its answer ends.
		stop := context.AfterFunc(n.ctx, func() { pw.Close() })
		defer stop()
		io.Copy(pw, r)
		r.Close()
		pw.Close()
	})
	return pr, nil
}

// OpenSection streams a range of a blob this node neither holds nor can
// keep (its disk is below the reserve); for any other blob it answers
// false, and the edge opens the file (serve.SectionBlobs).
func (s serveBlobs) OpenSection(ctx context.Context, hash string, start, length int64) (io.ReadCloser, bool, error) {
	n := s.n
	if n.diskLow() == "" || n.blobs.Has(hash) || n.staged.readable(hash) != nil {
		return nil, false, nil
	}
	r, _, err := n.streamBlob(hash, start, length)
	return r, true, err
}

var _ serve.SectionBlobs = serveBlobs{}
