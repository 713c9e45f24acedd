package peer_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/peer"
)

const testKey = "s3cret"

// newStore opens a blob store in a fresh temp folder; minFree > 0 makes it
// refuse every write as a full disk would.
func newStore(t *testing.T, minFree int64) *blobstore.Store {
	t.Helper()
	s, err := blobstore.New(blobstore.Config{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler), MinFreeBytes: minFree})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// full is a MinFreeBytes no disk has.
const full = 1 << 62

// textBlob returns n bytes of deterministic, compressible text; seed makes
// different blobs.
func textBlob(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, "<p>atoll %d static site</p>\n", r.IntN(50))
	}
	return b.Bytes()[:n]
}

func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// put stores b in s and waits for its compressed variants; it returns the
// blob's Info with them.
func put(t *testing.T, s *blobstore.Store, b []byte) blobstore.Info {
	t.Helper()
	info, err := s.Put(t.Context(), "", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitCompressed(t.Context()); err != nil {
		t.Fatal(err)
	}
	if info, err = s.Stat(info.Hash); err != nil {
		t.Fatal(err)
	}
	return info
}

// raw returns a stored representation's bytes as on disk.
func raw(t *testing.T, s *blobstore.Store, hash, encoding string) []byte {
	t.Helper()
	f, _, err := s.Open(hash, encoding)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testPeer serves the blob endpoints of a store the way a node does: the
// package's handlers behind the cluster key.
type testPeer struct {
	url     string
	corrupt atomic.Bool  // flip a byte of every blob served
	hasReqs atomic.Int64 // POSTs to HasPath
}

func newTestPeer(t *testing.T, store *blobstore.Store) *testPeer {
	t.Helper()
	p := &testPeer{}
	mux := http.NewServeMux()
	mux.Handle("PUT "+peer.BlobPath, peer.PutBlobHandler(store))
	mux.Handle("GET "+peer.BlobPath, peer.GetBlobHandler(corrupting{store, &p.corrupt}))
	mux.Handle("POST "+peer.HasPath, peer.HasHandler(store))
	mux.Handle("PUT "+peer.VariantsPath, peer.PutVariantsHandler(store))
	mux.Handle("POST "+peer.VariantsBatchPath, peer.PutVariantsBatchHandler(store))
	mux.Handle("POST "+peer.BatchPath, peer.PutBatchHandler(store))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !peer.KeyOK(r, testKey) {
			builder.WriteError(w, http.StatusForbidden, "missing or wrong cluster key")
			return
		}
		if r.URL.Path == peer.HasPath {
			p.hasReqs.Add(1)
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// corrupting exports a store's blobs, with the first byte flipped while on
// is set.
type corrupting struct {
	*blobstore.Store
	on *atomic.Bool
}

func (c corrupting) Export(hash string) (string, io.ReadCloser, int64, error) {
	header, body, n, err := c.Store.Export(hash)
	if err != nil || !c.on.Load() {
		return header, body, n, err
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		return "", nil, 0, err
	}
	b[0] ^= 1
	return header, io.NopCloser(bytes.NewReader(b)), n, nil
}
