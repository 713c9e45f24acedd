package peer_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/peer"
)

// waitingStore opens a blob store whose pending blobs wait an hour for
// their variants from a peer.
func waitingStore(t *testing.T) *blobstore.Store {
	t.Helper()
	s, err := blobstore.New(blobstore.Config{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		VariantsWait: func(string) time.Duration { return time.Hour }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// flipVariants sends a store's variants with one byte flipped.
type flipVariants struct{ *blobstore.Store }

func (f flipVariants) ExportVariants(hash string) (string, io.ReadCloser, int64, error) {
	h, body, n, err := f.Store.ExportVariants(hash)
	if err != nil {
		return h, body, n, err
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		return "", nil, 0, err
	}
	b[len(b)/2] ^= 1
	return h, io.NopCloser(bytes.NewReader(b)), n, nil
}

// TestPushVariants: the variants one store made reach a peer that holds
// the blob pending, byte for byte; a peer without the blob answers 404,
// bad variants 400, and a blob whose variants are not made has none to
// send.
func TestPushVariants(t *testing.T) {
	t.Parallel()
	content := textBlob(32<<10, 60)
	local := newStore(t, 0)
	info := put(t, local, content)
	client := peer.New(testKey)

	remote := waitingStore(t)
	srv := newTestPeer(t, remote)
	if _, err := remote.Put(t.Context(), "", bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if err := client.PushVariants(t.Context(), flipVariants{local}, srv.url, info.Hash); !errors.Is(err, atoll.ErrInvalid) {
		t.Errorf("PushVariants of a corrupt variant: %v, want a 400", err)
	}
	remote2 := waitingStore(t)
	srv2 := newTestPeer(t, remote2)
	if _, err := remote2.Put(t.Context(), "", bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if err := client.PushVariants(t.Context(), local, srv2.url, info.Hash); err != nil {
		t.Fatalf("PushVariants: %v", err)
	}
	if got, err := remote2.Stat(info.Hash); err != nil || !reflect.DeepEqual(got, info) {
		t.Fatalf("after PushVariants the peer has %+v, %v; want %+v", got, err, info)
	}
	for _, v := range info.Variants {
		if !bytes.Equal(raw(t, remote2, info.Hash, v.Encoding), raw(t, local, info.Hash, v.Encoding)) {
			t.Errorf("pushed %s variant differs from the local one", v.Encoding)
		}
	}
	if err := client.PushVariants(t.Context(), local, srv2.url, info.Hash); err != nil {
		t.Errorf("PushVariants again: %v, want nil (nothing to do)", err)
	}

	empty := newTestPeer(t, newStore(t, 0))
	if err := client.PushVariants(t.Context(), local, empty.url, info.Hash); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("PushVariants to a peer without the blob: %v, want ErrNotFound", err)
	}
	if err := client.PushVariants(t.Context(), remote2, empty.url, hashOf([]byte("x"))); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("PushVariants of a blob not held: %v, want ErrNotFound", err)
	}
	pending := waitingStore(t)
	if _, err := pending.Put(t.Context(), "", bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if err := client.PushVariants(t.Context(), pending, srv2.url, info.Hash); !errors.Is(err, blobstore.ErrPending) {
		t.Errorf("PushVariants of a pending blob: %v, want ErrPending", err)
	}
}
