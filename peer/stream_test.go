package peer_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/peer"
)

// TestStream reads sections of a blob stored nowhere on the reading side:
// byte-exact when the peer's copy is good; from a corrupt copy, an error
// naming the mismatch before the section's last byte, whatever the
// section.
func TestStream(t *testing.T) {
	t.Parallel()
	src := newStore(t, 0)
	srv := newTestPeer(t, src)
	client := peer.New(testKey)
	body := textBlob(300<<10, 7)
	info := put(t, src, body)
	size := int64(len(body))

	sections := []struct {
		name          string
		start, length int64
	}{
		{"whole", 0, -1},
		{"first byte", 0, 1},
		{"middle", 1000, 70 << 10},
		{"last byte", size - 1, 1},
		{"tail", 5, size - 5},
	}
	for _, tc := range sections {
		want := body[tc.start:]
		if tc.length >= 0 {
			want = body[tc.start : tc.start+tc.length]
		}
		srv.corrupt.Store(false)
		gotSize, r, err := client.Stream(t.Context(), srv.url, info.Hash, tc.start, tc.length)
		if err != nil {
			t.Fatalf("%s: Stream: %v", tc.name, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || gotSize != size || !bytes.Equal(got, want) {
			t.Errorf("%s: read %d bytes of a %d-byte blob, %v; want the %d bytes of the section", tc.name, len(got), gotSize, err, len(want))
		}

		srv.corrupt.Store(true)
		_, r, err = client.Stream(t.Context(), srv.url, info.Hash, tc.start, tc.length)
		if err != nil {
			t.Fatalf("%s: Stream of a corrupt copy: %v", tc.name, err)
		}
		got, err = io.ReadAll(r)
		r.Close()
		if !errors.Is(err, blobstore.ErrHashMismatch) || len(got) >= len(want) {
			t.Errorf("%s from a corrupt copy: %d of %d bytes, %v; want fewer and a hash mismatch", tc.name, len(got), len(want), err)
		}
	}

	if _, _, err := client.Stream(t.Context(), srv.url, info.Hash, size-1, 2); !errors.Is(err, blobstore.ErrMalformed) {
		t.Errorf("a section past the end: %v, want ErrMalformed", err)
	}
	if _, _, err := client.Stream(t.Context(), srv.url, hashOf([]byte("absent")), 0, -1); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("a blob the peer lacks: %v, want ErrNotFound", err)
	}
}
