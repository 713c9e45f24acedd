package blobstore

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
)

// exported returns the transfer of a blob of s, as a peer sends it.
func exported(t *testing.T, s *Store, hash string) (string, io.Reader) {
	t.Helper()
	header, body, _, err := s.Export(hash)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return header, bytes.NewReader(b)
}

func TestImportSmallHoldsTheBlobInMemory(t *testing.T) {
	src, _ := newTestStore(t)
	dst, _ := newTestStore(t)
	body := textBlob(16<<10, 1)
	info := put(t, src, body)
	if len(info.Variants) == 0 {
		t.Fatalf("source blob has no variants: %+v", info)
	}
	header, transfer := exported(t, src, info.Hash)

	_, rec, err := dst.ImportSmall(t.Context(), info.Hash, header, transfer, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if rec == nil {
		t.Fatal("ImportSmall of a 16 KiB blob with a 64 KiB limit: no Received")
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
		t.Fatal("ImportSmall stored the blob; it must leave that to Received.Store")
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

func TestImportSmallStoresBigBlobs(t *testing.T) {
	src, _ := newTestStore(t)
	dst, _ := newTestStore(t)
	body := textBlob(100<<10, 2)
	info := put(t, src, body)
	header, transfer := exported(t, src, info.Hash)

	got, rec, err := dst.ImportSmall(t.Context(), info.Hash, header, transfer, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if rec != nil {
		t.Error("a 100 KiB blob was held in memory with a 64 KiB limit")
	}
	if got.Size != int64(len(body)) || !dst.Has(info.Hash) {
		t.Errorf("ImportSmall of a big blob: %+v, stored %v; want it stored", got, dst.Has(info.Hash))
	}
}

func TestImportSmallRefusesBadTransfers(t *testing.T) {
	body := textBlob(8<<10, 3)
	hash := hashOf(body)
	corrupt := slices.Clone(body)
	corrupt[100] ^= 1

	tests := []struct {
		name, hash, header string
		body               []byte
		want               error
	}{
		{"corrupt identity bytes", hash, "size=8192", corrupt, ErrHashMismatch},
		// A variant far bigger than the limit must not be allocated, only
		// streamed (and here refused, the body being short).
		{"variant length beyond the limit", hash, "size=8192; br=1000000000000", body, ErrMalformed},
		{"body shorter than its header", hash, "size=8192", body[:100], ErrMalformed},
		{"body longer than its header", hash, "size=8192", append(slices.Clone(body), 'x'), ErrMalformed},
		{"header not a transfer header", hash, "eight kilobytes", body, ErrMalformed},
		{"invalid name", "../etc", "size=8192", body, ErrInvalidHash},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst, _ := newTestStore(t)
			_, rec, err := dst.ImportSmall(t.Context(), tc.hash, tc.header, bytes.NewReader(tc.body), 64<<10)
			if !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
			if rec != nil || dst.Has(hash) {
				t.Errorf("after a bad transfer: Received %v, stored %v; want neither", rec != nil, dst.Has(hash))
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

// TestReceivedPending: a small blob received without variants reports
// Pending when it may compress, as the stored copy will (so an edge
// compresses it per request meanwhile); one received with its variants,
// or one not worth compressing, does not.
func TestReceivedPending(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content []byte
		bare    bool
		want    bool
	}{
		{"text, bare", textBlob(8<<10, 70), true, true},
		{"text, with variants", textBlob(8<<10, 71), false, false},
		{"random bytes, bare", append([]byte("\x89PNG\r\n\x1a\n"), randomBlob(8<<10, 72)...), true, false},
		{"tiny text, bare", []byte("<p>hi</p>"), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src, _ := newTestStore(t)
			info := put(t, src, tt.content)
			header, body, _, err := src.Export(info.Hash)
			if err != nil {
				t.Fatal(err)
			}
			defer body.Close()
			if tt.bare {
				header = BlobHeader{Size: info.Size}.String()
				body = io.NopCloser(io.LimitReader(body, info.Size))
			}
			dst, _ := newTestStore(t)
			_, rec, err := dst.ImportSmall(t.Context(), info.Hash, header, body, 64<<10)
			if err != nil || rec == nil {
				t.Fatalf("ImportSmall: %v, %v", rec, err)
			}
			if got := rec.Info().Pending; got != tt.want {
				t.Errorf("Received.Info().Pending = %v, want %v", got, tt.want)
			}
			stored, err := rec.Store(t.Context(), dst)
			if err != nil {
				t.Fatal(err)
			}
			if stored.Pending != tt.want {
				t.Errorf("stored copy Pending = %v, want %v (as Received said)", stored.Pending, tt.want)
			}
		})
	}
}
