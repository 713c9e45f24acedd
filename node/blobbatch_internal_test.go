package node

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/placement"
)

func TestPlanBatchPush(t *testing.T) {
	var nodes []atoll.Node
	for i := range 4 {
		nodes = append(nodes, atoll.Node{ID: fmt.Sprintf("n%d", i), Role: atoll.RoleCore, State: atoll.NodeActive})
	}
	p := placement.New(nodes, 3)
	var infos []blobstore.Info
	for i := range 50 {
		infos = append(infos, blobstore.Info{Hash: fmt.Sprintf("%064x", i)})
	}
	infos = append(infos, infos[0]) // a repeat is planned once
	plan, err := planBatchPush("n0", p, infos)
	if err != nil {
		t.Fatal(err)
	}
	if plan.need != 2 {
		t.Errorf("need = %d, want 2 (a majority of 3 owners)", plan.need)
	}
	for _, info := range infos[:50] {
		h := info.Hash
		sent := 0
		for id, hashes := range plan.targets {
			if slices.Contains(hashes, h) {
				sent++
				if !p.Owns(id, h) {
					t.Errorf("blob %s planned for %s, which does not own it", h[60:], id)
				}
				if id == "n0" {
					t.Errorf("blob %s planned for this node itself", h[60:])
				}
			}
		}
		if got, want := sent+plan.stored[h], 3; got != want {
			t.Errorf("blob %s: %d owners pushed to or holding it, want %d", h[60:], got, want)
		}
	}
	if _, err := planBatchPush("n0", placement.New(nil, 3), infos); err == nil {
		t.Error("a plan without any core node succeeded")
	}
}

// TestPushBatchToAnOlderNode: a peer that answers the batch endpoint 404
// (its binary predates it) gets the blobs one push at a time.
func TestPushBatchToAnOlderNode(t *testing.T) {
	newStore := func() *blobstore.Store {
		s, err := blobstore.New(blobstore.Config{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	local, remote := newStore(), newStore()
	put := peer.PutBlobHandler(remote)
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "PUT" {
			r.SetPathValue("hash", r.URL.Path[len("/v1/peer/blobs/"):])
			put(w, r)
			return
		}
		builder.WriteError(w, http.StatusNotFound, "no such endpoint")
	}))
	t.Cleanup(old.Close)
	var hashes []string
	for i := range 10 {
		info, err := local.Put(t.Context(), "", bytes.NewReader(fmt.Appendf(nil, "blob %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, info.Hash)
	}
	n := &Node{peer: peer.New("key"), blobs: local}
	stored, err := n.pushBatch(t.Context(), old.URL, hashes)
	if err != nil {
		t.Fatalf("pushBatch to an older node: %v", err)
	}
	if len(stored) != len(hashes) {
		t.Errorf("%d blobs stored, want %d", len(stored), len(hashes))
	}
	for i, h := range hashes {
		if !remote.Has(h) {
			t.Errorf("blob %d not on the older node", i)
		}
	}
}
