package peer_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/peer"
)

// TestPushVariantsBatch: one request carries the variants of many blobs to
// a peer that holds them pending, byte for byte, and the answer says per
// blob what the peer did: stored, missing there, refused (a corrupt
// variant), or not sent at all (not held here). A peer from before the
// batch call answers ErrNoBatch.
func TestPushVariantsBatch(t *testing.T) {
	t.Parallel()
	local := newStore(t, 0)
	remote := waitingStore(t)
	srv := newTestPeer(t, remote)
	client := peer.New(testKey)
	var infos []blobstore.Info
	for i := range 4 {
		content := textBlob(8<<10+i*700, uint64(80+i))
		infos = append(infos, put(t, local, content))
		if i < 3 {
			if _, err := remote.Put(t.Context(), "", bytes.NewReader(content)); err != nil {
				t.Fatal(err)
			}
		}
	}
	notHere := hashOf([]byte("not held here"))
	hashes := []string{infos[0].Hash, infos[1].Hash, notHere, infos[3].Hash}

	got, err := client.PushVariantsBatch(t.Context(), local, srv.url, hashes)
	if err != nil {
		t.Fatalf("PushVariantsBatch: %v", err)
	}
	wantStatus := []string{peer.VariantsStored, peer.VariantsStored, "", peer.VariantsMissing}
	for i, r := range got {
		if r.Hash != hashes[i] || r.Status != wantStatus[i] || (r.Status == "") != (r.Error != "") {
			t.Errorf("result %d = %+v, want status %q for %.8s", i, r, wantStatus[i], hashes[i])
		}
	}
	for _, info := range infos[:2] {
		if st, err := remote.Stat(info.Hash); err != nil || !reflect.DeepEqual(st, info) {
			t.Errorf("after the batch the peer has %+v, %v; want %+v", st, err, info)
		}
		for _, v := range info.Variants {
			if !bytes.Equal(raw(t, remote, info.Hash, v.Encoding), raw(t, local, info.Hash, v.Encoding)) {
				t.Errorf("sent %s variant differs from the local one", v.Encoding)
			}
		}
	}

	// Corrupt variants are refused; the peer compresses its own copy.
	got, err = client.PushVariantsBatch(t.Context(), flipVariants{local}, srv.url, []string{infos[2].Hash, infos[0].Hash})
	if err != nil {
		t.Fatalf("PushVariantsBatch of corrupt variants: %v", err)
	}
	if got[0].Status != peer.VariantsRefused || got[1].Status != peer.VariantsStored {
		t.Errorf("corrupt variants of a pending blob, then of a settled one: %+v, want refused, then stored (nothing to do)", got)
	}

	old := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(old.Close)
	if _, err := client.PushVariantsBatch(t.Context(), local, old.URL, hashes); !errors.Is(err, peer.ErrNoBatch) {
		t.Errorf("PushVariantsBatch to a node without the call: %v, want ErrNoBatch", err)
	}
}
