package blobstore

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
)

func TestFetchSmallHoldsTheBlobInMemory(t *testing.T) {
	src, _ := newTestStore(t)
	dst, _ := newTestStore(t)
	body := textBlob(16<<10, 1)
	info := put(t, src, body)
	if len(info.Variants) == 0 {
		t.Fatalf("source blob has no variants: %+v", info)
	}
	peer := newTestPeer(t, src)
	client := NewPeer(testKey)

	_, rec, err := client.FetchSmall(t.Context(), dst, peer.url, info.Hash, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if rec == nil {
		t.Fatal("FetchSmall of a 16 KiB blob with a 64 KiB limit: no Received")
	}
	if !bytes.Equal(rec.Identity(), body) {
		t.Errorf("Identity: %d bytes, want the blob's %d", len(rec.Identity()), len(body))
	}
	for _, v := range info.Variants {
		got, ok := rec.Variant(v.Encoding)
		if want := readRaw(t, src, info.Hash, v.Encoding); !ok || !bytes.Equal(got, want) {
			t.Errorf("Variant(%s): %d bytes, %v; want the source's %d bytes", v.Encoding, len(got), ok, len(want))
		}
	}
	if got, want := encodingsOf(rec.Info()), encodingsOf(info); !slices.Equal(got, want) {
		t.Errorf("Info variants %v, want %v", got, want)
	}
	if dst.Has(info.Hash) {
		t.Fatal("FetchSmall stored the blob; it must leave that to Received.Store")
	}

	stored, err := rec.Store(t.Context(), dst)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := encodingsOf(stored), encodingsOf(info); !slices.Equal(got, want) {
		t.Errorf("stored variants %v, want %v", got, want)
	}
	if got := readBlob(t, dst, info.Hash, ""); !bytes.Equal(got, body) {
		t.Error("stored copy differs from the blob")
	}
}

func TestFetchSmallStoresBigBlobs(t *testing.T) {
	src, _ := newTestStore(t)
	dst, _ := newTestStore(t)
	body := textBlob(100<<10, 2)
	info := put(t, src, body)
	peer := newTestPeer(t, src)

	got, rec, err := NewPeer(testKey).FetchSmall(t.Context(), dst, peer.url, info.Hash, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if rec != nil {
		t.Error("a 100 KiB blob was held in memory with a 64 KiB limit")
	}
	if got.Size != int64(len(body)) || !dst.Has(info.Hash) {
		t.Errorf("FetchSmall of a big blob: %+v, stored %v; want it stored", got, dst.Has(info.Hash))
	}
}

func TestFetchSmallRefusesBadAnswers(t *testing.T) {
	src, _ := newTestStore(t)
	body := textBlob(8<<10, 3)
	info := put(t, src, body)
	hash := info.Hash

	corrupt := newTestPeer(t, src)
	corrupt.corrupt.Store(true) // flips a byte of the identity bytes

	// A header whose variant is far bigger than the limit: it must not be
	// allocated, only streamed (and here refused, the body being short).
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderBlob, "size=8192; br=1000000000000")
		w.Write(body)
	}))
	t.Cleanup(huge.Close)
	short := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderBlob, "size=8192")
		w.Write(body[:100])
	}))
	t.Cleanup(short.Close)
	long := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderBlob, "size=8192")
		w.Write(append(append([]byte(nil), body...), 'x'))
	}))
	t.Cleanup(long.Close)

	tests := []struct {
		name string
		url  string
		want error
	}{
		{"corrupt identity bytes", corrupt.url, ErrHashMismatch},
		{"variant length beyond the limit", huge.URL, ErrMalformed},
		{"body shorter than its header", short.URL, ErrMalformed},
		{"body longer than its header", long.URL, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst, _ := newTestStore(t)
			_, rec, err := NewPeer(testKey).FetchSmall(t.Context(), dst, tc.url, hash, 64<<10)
			if !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
			if rec != nil || dst.Has(hash) {
				t.Errorf("after a bad answer: Received %v, stored %v; want neither", rec != nil, dst.Has(hash))
			}
		})
	}
}

// readRaw returns the bytes of a stored representation as on disk.
func readRaw(t *testing.T, s *Store, hash, encoding string) []byte {
	t.Helper()
	f, _, err := s.Open(hash, encoding)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(f); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
