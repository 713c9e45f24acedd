package peer_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/peer"
)

func TestPushAndFetch(t *testing.T) {
	t.Parallel()
	local, remote, third := newStore(t, 0), newStore(t, 0), newStore(t, 0)
	srv := newTestPeer(t, remote)
	client := peer.New(testKey)

	info := put(t, local, textBlob(8<<10, 50))
	if len(info.Variants) == 0 {
		t.Fatalf("the blob has no variants to move: %+v", info)
	}
	if err := client.Push(t.Context(), local, srv.url, info.Hash); err != nil {
		t.Fatalf("Push: %v", err)
	}
	if got, err := remote.Stat(info.Hash); err != nil || !reflect.DeepEqual(got, info) {
		t.Fatalf("after Push, the peer has %+v, %v; want %+v", got, err, info)
	}
	for _, v := range info.Variants {
		if !bytes.Equal(raw(t, remote, info.Hash, v.Encoding), raw(t, local, info.Hash, v.Encoding)) {
			t.Errorf("pushed %s variant differs from the local one", v.Encoding)
		}
	}
	if err := client.Push(t.Context(), local, srv.url, info.Hash); err != nil {
		t.Errorf("Push of a blob the peer holds already: %v", err)
	}

	// A third node fetches it from the peer.
	got, err := client.Fetch(t.Context(), third, srv.url+"/", info.Hash)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if !reflect.DeepEqual(got, info) {
		t.Errorf("Fetch = %+v, want %+v", got, info)
	}
	if err := third.Verify(info.Hash); err != nil {
		t.Errorf("Verify after Fetch: %v", err)
	}
	for _, v := range info.Variants {
		if !bytes.Equal(raw(t, third, info.Hash, v.Encoding), raw(t, local, info.Hash, v.Encoding)) {
			t.Errorf("fetched %s variant differs from the original", v.Encoding)
		}
	}
}

func TestFetchCacheAndFetchSmall(t *testing.T) {
	t.Parallel()
	src := newStore(t, 0)
	srv := newTestPeer(t, src)
	client := peer.New(testKey)
	small := put(t, src, textBlob(16<<10, 1))
	big := put(t, src, textBlob(100<<10, 2))

	dst := newStore(t, 0)
	if got, err := client.FetchCache(t.Context(), dst, srv.url, small.Hash); err != nil || !reflect.DeepEqual(got, small) {
		t.Errorf("FetchCache = %+v, %v; want %+v", got, err, small)
	}

	dst = newStore(t, 0)
	_, rec, err := client.FetchSmall(t.Context(), dst, srv.url, small.Hash, 64<<10)
	if err != nil || rec == nil || !bytes.Equal(rec.Identity(), raw(t, src, small.Hash, "")) {
		t.Fatalf("FetchSmall of a 16 KiB blob with a 64 KiB limit: %v, Received %v; want it in memory", err, rec != nil)
	}
	if dst.Has(small.Hash) {
		t.Error("FetchSmall stored a small blob; it must leave that to Received.Store")
	}
	got, rec, err := client.FetchSmall(t.Context(), dst, srv.url, big.Hash, 64<<10)
	if err != nil || rec != nil || got.Size != big.Size || !dst.Has(big.Hash) {
		t.Errorf("FetchSmall of a 100 KiB blob: %+v, %v, Received %v; want it stored, not in memory", got, err, rec != nil)
	}
	if got, rec, err := client.FetchSmall(t.Context(), dst, "http://127.0.0.1:1", big.Hash, 64<<10); err != nil || rec != nil || got.Size != big.Size {
		t.Errorf("FetchSmall of a blob held already: %+v, %v; want its Info without asking the peer", got, err)
	}

	srv.corrupt.Store(true)
	if _, rec, err := client.FetchSmall(t.Context(), newStore(t, 0), srv.url, small.Hash, 64<<10); !errors.Is(err, blobstore.ErrHashMismatch) || rec != nil {
		t.Errorf("FetchSmall from a peer sending wrong bytes: %v, Received %v; want ErrHashMismatch and none", err, rec != nil)
	}
}

func TestPeerErrors(t *testing.T) {
	t.Parallel()
	remote, local := newStore(t, 0), newStore(t, 0)
	srv := newTestPeer(t, remote)
	stored := put(t, remote, textBlob(4<<10, 51))
	localOnly := put(t, local, []byte("only here"))
	absent := hashOf([]byte("absent"))

	wrongKey := peer.New("wrong")
	forbidden := map[string]error{
		"Push":  wrongKey.Push(t.Context(), local, srv.url, localOnly.Hash),
		"Fetch": func() error { _, err := wrongKey.Fetch(t.Context(), local, srv.url, stored.Hash); return err }(),
		"Has":   func() error { _, err := wrongKey.Has(t.Context(), srv.url, []string{stored.Hash}); return err }(),
	}
	for op, err := range forbidden {
		var pe *peer.Error
		if !errors.As(err, &pe) || pe.StatusCode != http.StatusForbidden || pe.Message != "missing or wrong cluster key" {
			t.Errorf("%s with a wrong key: err = %v, want a 403 Error with the server's message", op, err)
		}
	}

	client := peer.New(testKey)
	_, err := client.Fetch(t.Context(), local, srv.url, absent)
	var pe *peer.Error
	if !errors.Is(err, blobstore.ErrNotFound) || !errors.As(err, &pe) || pe.StatusCode != http.StatusNotFound {
		t.Errorf("Fetch of a blob the peer lacks: err = %v, want blobstore.ErrNotFound and a 404 Error", err)
	}
	if err := client.Push(t.Context(), local, srv.url, absent); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("Push of a blob not held locally: err = %v, want ErrNotFound", err)
	}
	if _, err := client.Fetch(t.Context(), local, srv.url, "../../etc"); !errors.Is(err, blobstore.ErrInvalidHash) {
		t.Errorf("Fetch of an invalid name: err = %v, want ErrInvalidHash", err)
	}
	if _, err := client.Has(t.Context(), srv.url, []string{stored.Hash, "nope"}); !errors.Is(err, blobstore.ErrInvalidHash) {
		t.Errorf("Has with an invalid name: err = %v, want ErrInvalidHash", err)
	}

	// A peer that serves wrong bytes: nothing is kept.
	srv.corrupt.Store(true)
	if _, err := client.Fetch(t.Context(), local, srv.url, stored.Hash); !errors.Is(err, blobstore.ErrHashMismatch) {
		t.Errorf("Fetch from a peer sending wrong bytes: err = %v, want ErrHashMismatch", err)
	}
	if local.Has(stored.Hash) {
		t.Errorf("a blob with wrong bytes was kept")
	}
}

func TestPushToAFullPeer(t *testing.T) {
	t.Parallel()
	local := newStore(t, 0)
	srv := newTestPeer(t, newStore(t, full))
	info := put(t, local, textBlob(8<<10, 24))
	err := peer.New(testKey).Push(t.Context(), local, srv.url, info.Hash)
	var pe *peer.Error
	if !errors.Is(err, blobstore.ErrNoSpace) || !errors.As(err, &pe) || pe.StatusCode != http.StatusInsufficientStorage {
		t.Errorf("Push to a full peer: %v, want ErrNoSpace and a 507 Error", err)
	}
}

func TestErrorOfAnAnswerThatIsNotJSON(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "disk full", http.StatusInsufficientStorage)
	}))
	defer srv.Close()
	local := newStore(t, 0)
	info := put(t, local, []byte("hello"))
	err := peer.New(testKey).Push(t.Context(), local, srv.URL, info.Hash)
	var pe *peer.Error
	if !errors.As(err, &pe) || pe.StatusCode != http.StatusInsufficientStorage || pe.Message != "disk full" || pe.Method != http.MethodPut {
		t.Fatalf("Push to a failing peer: err = %#v, want a 507 Error with the body as message", err)
	}
	if !strings.Contains(err.Error(), "507") || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("error %q does not show the status and the message", err)
	}
}

func TestHas(t *testing.T) {
	t.Parallel()
	remote := newStore(t, 0)
	srv := newTestPeer(t, remote)
	client := peer.New(testKey)

	a := put(t, remote, []byte("blob a"))
	b := put(t, remote, textBlob(300, 52))
	// More than one request's worth of hashes, with duplicates.
	var hashes []string
	for i := range peer.MaxHasHashes + 10 {
		hashes = append(hashes, hashOf([]byte(strconv.Itoa(i))))
	}
	hashes = append(hashes, a.Hash, b.Hash, a.Hash)

	got, err := client.Has(t.Context(), srv.url, hashes)
	if err != nil {
		t.Fatalf("Has: %v", err)
	}
	if want := map[string]int64{a.Hash: a.Size, b.Hash: b.Size}; !reflect.DeepEqual(got, want) {
		t.Errorf("Has = %v, want %v", got, want)
	}
	if got, want := srv.hasReqs.Load(), int64(2); got != want {
		t.Errorf("Has sent %d requests, want %d", got, want)
	}
	if got, err := client.Has(t.Context(), srv.url, nil); err != nil || len(got) != 0 {
		t.Errorf("Has(nil) = %v, %v; want an empty map", got, err)
	}
	if got := srv.hasReqs.Load(); got != 2 {
		t.Errorf("Has(nil) sent a request")
	}
}

func TestParseHasRequest(t *testing.T) {
	t.Parallel()
	h := hashOf([]byte("x"))
	tests := []struct {
		name    string
		body    string
		want    []string
		wantErr error
	}{
		{name: "two hashes", body: `{"hashes":["` + h + `","` + h + `"]}`, want: []string{h, h}},
		{name: "empty list", body: `{"hashes":[]}`, want: []string{}},
		{name: "no list", body: `{}`},
		{name: "white space around", body: " \n{\"hashes\": [\"" + h + "\"]}\n", want: []string{h}},
		{name: "too many", body: `{"hashes":["` + h + `","` + h + `","` + h + `"]}`, wantErr: blobstore.ErrMalformed},
		{name: "unknown field", body: `{"hashes":[],"more":1}`, wantErr: blobstore.ErrMalformed},
		{name: "two objects", body: `{"hashes":[]}{"hashes":[]}`, wantErr: blobstore.ErrMalformed},
		{name: "not json", body: `hashes=` + h, wantErr: blobstore.ErrMalformed},
		{name: "empty body", body: ``, wantErr: blobstore.ErrMalformed},
		{name: "too big", body: `{"hashes":[]` + strings.Repeat(" ", 2000) + `}`, wantErr: blobstore.ErrMalformed},
		{name: "invalid hash", body: `{"hashes":["` + strings.ToUpper(h) + `"]}`, wantErr: blobstore.ErrInvalidHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := peer.ParseHasRequest(strings.NewReader(tt.body), 2)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseHasRequest: err = %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParseHasRequest = %q, want %q", got, tt.want)
			}
		})
	}
}
