package peer_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/peer"
)

func TestPushBatch(t *testing.T) {
	t.Parallel()
	local, remote := newStore(t, 0), newStore(t, 0)
	srv := newTestPeer(t, remote)
	client := peer.New(testKey)
	var hashes []string
	for i := range 20 {
		info, err := local.Put(t.Context(), "", bytes.NewReader(textBlob(500+i*100, uint64(i))))
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, info.Hash)
	}
	put(t, remote, textBlob(500, 0)) // held already: answered all the same
	if err := client.PushBatch(t.Context(), local, srv.url, hashes); err != nil {
		t.Fatalf("PushBatch: %v", err)
	}
	for i, h := range hashes {
		if !bytes.Equal(raw(t, remote, h, ""), raw(t, local, h, "")) {
			t.Errorf("blob %d differs on the peer", i)
		}
	}
	// A blob the sender lacks fails the push, and the peer stores nothing
	// of the batch.
	missing := hashOf([]byte("not stored"))
	fresh, err := local.Put(t.Context(), "", bytes.NewReader([]byte("fresh blob")))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.PushBatch(t.Context(), local, srv.url, []string{fresh.Hash, missing}); err == nil {
		t.Fatal("PushBatch of a blob the sender lacks succeeded")
	}
	if remote.Has(fresh.Hash) {
		t.Error("the peer stored part of a batch that failed")
	}
}

func TestPushBatchToAnOlderPeer(t *testing.T) {
	t.Parallel()
	local := newStore(t, 0)
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		builder.WriteError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	}))
	t.Cleanup(old.Close)
	info, err := local.Put(t.Context(), "", bytes.NewReader([]byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	err = peer.New(testKey).PushBatch(t.Context(), local, old.URL, []string{info.Hash})
	if !errors.Is(err, peer.ErrNoBatch) {
		t.Errorf("PushBatch to a node without the endpoint: %v, want ErrNoBatch", err)
	}
}

func TestPutBatchHandlerRefusesABadBlob(t *testing.T) {
	t.Parallel()
	remote := newStore(t, 0)
	srv := newTestPeer(t, remote)
	good, bad := []byte("good"), []byte("bad")
	body := good
	body = append([]byte(hashOf(good)+" 4\n"), body...)
	body = append(body, []byte(hashOf([]byte("other"))+" 3\n")...)
	body = append(body, bad...)
	req, _ := http.NewRequest("POST", srv.url+peer.BatchPath, bytes.NewReader(body))
	req.Header.Set(peer.HeaderClusterKey, testKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("status %d, want 400", res.StatusCode)
	}
	if _, err := remote.Stat(hashOf(good)); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("the good blob of a refused batch was stored: %v", err)
	}
}
