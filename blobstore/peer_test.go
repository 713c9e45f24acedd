package blobstore

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

const testKey = "s3cret"

// testPeer stands in for a node's peer handlers: what package node serves,
// built only on the exported API.
type testPeer struct {
	store   *Store
	corrupt atomic.Bool  // flip a byte of every blob served
	hasReqs atomic.Int64 // POSTs to PeerHasPath
	url     string
}

func newTestPeer(t *testing.T, store *Store) *testPeer {
	t.Helper()
	p := &testPeer{store: store}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT "+PeerBlobPath, p.put)
	mux.HandleFunc("GET "+PeerBlobPath, p.get)
	mux.HandleFunc("POST "+PeerHasPath, p.has)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(HeaderClusterKey)), []byte(testKey)) != 1 {
			writeError(w, http.StatusForbidden, "missing or wrong cluster key")
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func (p *testPeer) put(w http.ResponseWriter, r *http.Request) {
	hash := r.PathValue("hash")
	status := http.StatusCreated
	if p.store.Has(hash) {
		status = http.StatusOK
	}
	info, err := p.store.Import(r.Context(), hash, r.Header.Get(HeaderBlob), r.Body)
	switch {
	case errors.Is(err, ErrInvalidHash), errors.Is(err, ErrMalformed), errors.Is(err, ErrHashMismatch):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, ErrNoSpace):
		writeError(w, http.StatusInsufficientStorage, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, status, PushResponse{Hash: info.Hash, Size: info.Size})
}

func (p *testPeer) get(w http.ResponseWriter, r *http.Request) {
	header, body, length, err := p.store.Export(r.PathValue("hash"))
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "blob not on this node")
		return
	case errors.Is(err, ErrInvalidHash):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	defer body.Close()
	w.Header().Set(HeaderBlob, header)
	w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
	if p.corrupt.Load() {
		b, _ := io.ReadAll(body)
		b[len(b)/3] ^= 0x20
		w.Write(b)
		return
	}
	io.Copy(w, body)
}

func (p *testPeer) has(w http.ResponseWriter, r *http.Request) {
	p.hasReqs.Add(1)
	hashes, err := ParseHasRequest(r.Body, MaxHasHashes)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, HasResponse{Present: p.store.Present(hashes)})
}

func TestPeerPushAndFetch(t *testing.T) {
	t.Parallel()
	local, _ := newTestStore(t)
	remote, _ := newTestStore(t)
	peer := newTestPeer(t, remote)
	client := NewPeer(testKey)

	info := put(t, local, textBlob(8<<10, 50))
	if err := client.Push(t.Context(), local, peer.url, info.Hash); err != nil {
		t.Fatalf("Push: %v", err)
	}
	if got, err := remote.Stat(info.Hash); err != nil || !reflect.DeepEqual(got, info) {
		t.Fatalf("after Push, the peer has %+v, %v; want %+v", got, err, info)
	}
	for _, v := range info.Variants {
		if !bytes.Equal(rawFile(t, remote, info.Hash, v.Encoding), rawFile(t, local, info.Hash, v.Encoding)) {
			t.Errorf("pushed %s variant differs from the local one", v.Encoding)
		}
	}
	// Again: the peer holds it already.
	if err := client.Push(t.Context(), local, peer.url, info.Hash); err != nil {
		t.Errorf("second Push: %v", err)
	}

	// A third node fetches it from the peer.
	third, _ := newTestStore(t)
	got, err := client.Fetch(t.Context(), third, peer.url+"/", info.Hash)
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
		if !bytes.Equal(rawFile(t, third, info.Hash, v.Encoding), rawFile(t, local, info.Hash, v.Encoding)) {
			t.Errorf("fetched %s variant differs from the original", v.Encoding)
		}
	}
	waitAccounting(t, third)
	if blobs, size := third.Usage(); blobs != 1 || size != diskBytes(info) {
		t.Errorf("Usage after Fetch = %d blobs, %d bytes; want 1, %d", blobs, size, diskBytes(info))
	}
}

func TestPeerErrors(t *testing.T) {
	t.Parallel()
	remote, _ := newTestStore(t)
	peer := newTestPeer(t, remote)
	stored := importHandmade(t, remote, textBlob(4<<10, 51), "gzip")
	local, localDir := newTestStore(t)
	absent := hashOf([]byte("absent"))
	localOnly := put(t, local, randomBlob(100, 51))

	wrongKey := NewPeer("wrong")
	forbidden := map[string]error{
		"Push":  wrongKey.Push(t.Context(), local, peer.url, localOnly.Hash),
		"Fetch": func() error { _, err := wrongKey.Fetch(t.Context(), local, peer.url, stored.Hash); return err }(),
		"Has":   func() error { _, err := wrongKey.Has(t.Context(), peer.url, []string{stored.Hash}); return err }(),
	}
	for op, err := range forbidden {
		var se *StatusError
		if !errors.As(err, &se) || se.StatusCode != http.StatusForbidden || se.Message != "missing or wrong cluster key" {
			t.Errorf("%s with a wrong key: err = %v, want a StatusError 403 with the server's message", op, err)
		}
	}

	client := NewPeer(testKey)
	_, err := client.Fetch(t.Context(), local, peer.url, absent)
	var se *StatusError
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &se) || se.StatusCode != http.StatusNotFound {
		t.Errorf("Fetch of a blob the peer lacks: err = %v, want ErrNotFound and a 404 StatusError", err)
	}
	if err := client.Push(t.Context(), local, peer.url, absent); !errors.Is(err, ErrNotFound) {
		t.Errorf("Push of a blob not held locally: err = %v, want ErrNotFound", err)
	}
	if _, err := client.Fetch(t.Context(), local, peer.url, "../../etc"); !errors.Is(err, ErrInvalidHash) {
		t.Errorf("Fetch of an invalid name: err = %v, want ErrInvalidHash", err)
	}
	if _, err := client.Has(t.Context(), peer.url, []string{stored.Hash, "nope"}); !errors.Is(err, ErrInvalidHash) {
		t.Errorf("Has with an invalid name: err = %v, want ErrInvalidHash", err)
	}

	// A peer that serves wrong bytes: nothing is kept.
	peer.corrupt.Store(true)
	_, err = client.Fetch(t.Context(), local, peer.url, stored.Hash)
	if !errors.Is(err, ErrHashMismatch) {
		t.Errorf("Fetch from a peer sending wrong bytes: err = %v, want ErrHashMismatch", err)
	}
	if local.Has(stored.Hash) {
		t.Errorf("a blob with wrong bytes was kept")
	}
	if got, want := filesUnder(t, localDir), blobFiles(localOnly); !slices.Equal(got, want) {
		t.Errorf("files on disk = %v, want only %v", got, want)
	}
}

func TestPeerStatusErrorMessage(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "disk full", http.StatusInsufficientStorage)
	}))
	defer srv.Close()
	local, _ := newTestStore(t)
	info := put(t, local, []byte("hello"))
	err := NewPeer(testKey).Push(t.Context(), local, srv.URL, info.Hash)
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusInsufficientStorage || se.Message != "disk full" || se.Method != http.MethodPut {
		t.Fatalf("Push to a failing peer: err = %#v, want a 507 StatusError with the body as message", err)
	}
	if !strings.Contains(err.Error(), "507") || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("error %q does not show the status and the message", err)
	}
}

func TestPeerHas(t *testing.T) {
	t.Parallel()
	remote, _ := newTestStore(t)
	peer := newTestPeer(t, remote)
	client := NewPeer(testKey)

	a := put(t, remote, []byte("blob a"))
	b := put(t, remote, randomBlob(300, 52))
	// More than one request's worth of hashes, with duplicates.
	var hashes []string
	for i := range MaxHasHashes + 10 {
		hashes = append(hashes, hashOf([]byte(strconv.Itoa(i))))
	}
	hashes = append(hashes, a.Hash, b.Hash, a.Hash)

	got, err := client.Has(t.Context(), peer.url, hashes)
	if err != nil {
		t.Fatalf("Has: %v", err)
	}
	if want := map[string]int64{a.Hash: a.Size, b.Hash: b.Size}; !reflect.DeepEqual(got, want) {
		t.Errorf("Has = %v, want %v", got, want)
	}
	if got, want := peer.hasReqs.Load(), int64(2); got != want {
		t.Errorf("Has sent %d requests, want %d", got, want)
	}
	if got, err := client.Has(t.Context(), peer.url, nil); err != nil || len(got) != 0 {
		t.Errorf("Has(nil) = %v, %v; want an empty map", got, err)
	}
	if got := peer.hasReqs.Load(); got != 2 {
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
		{name: "too many", body: `{"hashes":["` + h + `","` + h + `","` + h + `"]}`, wantErr: ErrMalformed},
		{name: "unknown field", body: `{"hashes":[],"more":1}`, wantErr: ErrMalformed},
		{name: "two objects", body: `{"hashes":[]}{"hashes":[]}`, wantErr: ErrMalformed},
		{name: "not json", body: `hashes=` + h, wantErr: ErrMalformed},
		{name: "empty body", body: ``, wantErr: ErrMalformed},
		{name: "too big", body: `{"hashes":[]` + strings.Repeat(" ", 2000) + `}`, wantErr: ErrMalformed},
		{name: "invalid hash", body: `{"hashes":["` + strings.ToUpper(h) + `"]}`, wantErr: ErrInvalidHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseHasRequest(strings.NewReader(tt.body), 2)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseHasRequest: err = %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParseHasRequest = %q, want %q", got, tt.want)
			}
		})
	}
}
