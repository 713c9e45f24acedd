package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// sectionBlobs is fakeBlobs that streams ranges (SectionBlobs) from its
// files, or fails them as told.
type sectionBlobs struct {
	*fakeBlobs
	calls   atomic.Int64
	openErr error // OpenSection fails
	cutAt   int64 // > 0: the body fails after this many bytes
}

func (s *sectionBlobs) OpenSection(_ context.Context, hash string, start, length int64) (io.ReadCloser, bool, error) {
	s.calls.Add(1)
	if s.openErr != nil {
		return nil, true, s.openErr
	}
	f, err := os.Open(filepath.Join(s.dir, hash))
	if err != nil {
		return nil, true, err
	}
	var r io.Reader = io.NewSectionReader(f, start, length)
	if s.cutAt > 0 {
		r = io.MultiReader(io.LimitReader(r, s.cutAt), failingReader{})
	}
	return struct {
		io.Reader
		io.Closer
	}{r, f}, true, nil
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("hash mismatch") }

// TestRangeFromSectionBlobs: a Blobs that streams sections answers a 206
// with exactly the range; its failure to open is a 503, and a body that
// fails midway ends the answer short of its Content-Length.
func TestRangeFromSectionBlobs(t *testing.T) {
	fx := newFixture(t)
	sb := &sectionBlobs{fakeBlobs: fx.blobs}
	h, err := New(Config{Domain: testDomain}, fx.cat, sb)
	if err != nil {
		t.Fatal(err)
	}
	fx.h, fx.addr = h, startServer(t, h)
	size := len(bigBin)

	resp := fx.do(t, request{target: "/big.bin", header: []string{"Range: bytes=10000-109999"}})
	if resp.status != 206 || !bytes.Equal(resp.body, bigBin[10000:110000]) || resp.get("Content-Range") != fmt.Sprintf("bytes 10000-109999/%d", size) {
		t.Errorf("streamed range: %d %q, %d bytes; want 206 and the 100000 bytes", resp.status, resp.get("Content-Range"), len(resp.body))
	}
	if sb.calls.Load() != 1 {
		t.Errorf("OpenSection called %d times, want 1", sb.calls.Load())
	}

	sb.cutAt = 5000
	if _, err := fx.tryDo(request{target: "/big.bin", header: []string{"Range: bytes=0-99999"}}); err == nil {
		t.Error("a section that failed after 5000 bytes was answered whole")
	}

	sb.cutAt, sb.openErr = 0, errors.New("no source")
	if resp := fx.do(t, request{target: "/big.bin", header: []string{"Range: bytes=0-9"}}); resp.status != 503 {
		t.Errorf("OpenSection failed: %d, want 503", resp.status)
	}
}
