package blobstore

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// waitingStore opens a store in dir whose blobs wait wait for variants
// from elsewhere before it compresses them itself.
func waitingStore(t *testing.T, dir string, wait time.Duration) *Store {
	t.Helper()
	s, err := New(Config{Dir: dir, Logger: slog.New(slog.DiscardHandler),
		VariantsWait: func(string) time.Duration { return wait }})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// madeElsewhere returns the variants another store made of content, as
// ExportVariants sends them.
func madeElsewhere(t *testing.T, content []byte) (header string, body []byte) {
	t.Helper()
	other, _ := newTestStore(t)
	info := put(t, other, content)
	h, rc, length, err := other.ExportVariants(info.Hash)
	if err != nil {
		t.Fatalf("ExportVariants: %v", err)
	}
	defer rc.Close()
	body, err = io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(body)) != length {
		t.Fatalf("ExportVariants: %d bytes read, length %d", len(body), length)
	}
	return h, body
}

// TestAcceptVariants: a blob waiting for its variants takes those another
// store made, verified, instead of compressing itself: same files, same
// bytes, Verify passes, OnVariants-visible, and the counters tell.
func TestAcceptVariants(t *testing.T) {
	t.Parallel()
	content := textBlob(64<<10, 7)
	header, body := madeElsewhere(t, content)

	dir := t.TempDir()
	s := waitingStore(t, dir, time.Hour)
	info, err := s.Put(t.Context(), "", bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.PendingCompression(); got != 1 {
		t.Fatalf("PendingCompression while waiting for the variants = %d, want 1", got)
	}
	got, err := s.AcceptVariants(t.Context(), info.Hash, header, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("AcceptVariants: %v", err)
	}
	if got.Pending || !slices.Equal(encodingsOf(got), []string{"br", "zstd", "gzip"}) {
		t.Fatalf("Info after AcceptVariants = %+v, want br, zstd, gzip and not pending", got)
	}
	if err := s.Verify(info.Hash); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if b := readBlob(t, s, info.Hash, EncodingBrotli); !bytes.Equal(b, content) {
		t.Error("accepted br variant does not decompress to the blob")
	}
	if files, want := filesUnder(t, dir), append(blobFiles(got), "temp/"); !slices.Equal(files, want[:len(want)-1]) {
		t.Errorf("files on disk = %v, want %v (no marker, no temp file)", files, want[:len(want)-1])
	}
	if got := s.PendingCompression(); got != 0 {
		t.Errorf("PendingCompression after the variants arrived = %d, want 0", got)
	}
	if st, want := s.CompressStats(), (CompressStats{Compressed: 0, Accepted: 1}); st != want {
		t.Errorf("CompressStats = %+v, want %+v", st, want)
	}
	// Again: the blob is settled, the body is read and nothing changes.
	again, err := s.AcceptVariants(t.Context(), info.Hash, header, bytes.NewReader(body))
	if err != nil || !slices.Equal(encodingsOf(again), encodingsOf(got)) {
		t.Errorf("AcceptVariants again = %+v, %v; want the same Info, nil", again, err)
	}
	if st := s.CompressStats(); st.Accepted != 1 {
		t.Errorf("Accepted after a repeated call = %d, want 1", st.Accepted)
	}
}

// TestAcceptNoVariants: a header without variants (the sender kept none)
// settles the blob without compressing it here.
func TestAcceptNoVariants(t *testing.T) {
	t.Parallel()
	content := textBlob(8<<10, 9)
	s := waitingStore(t, t.TempDir(), time.Hour)
	info, err := s.Put(t.Context(), "", bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.AcceptVariants(t.Context(), info.Hash, BlobHeader{Size: info.Size}.String(), strings.NewReader(""))
	if err != nil {
		t.Fatalf("AcceptVariants: %v", err)
	}
	if got.Pending || len(got.Variants) != 0 {
		t.Errorf("Info = %+v, want no variants, not pending", got)
	}
	if st := s.CompressStats(); st.Compressed != 0 {
		t.Errorf("Compressed = %d, want 0", st.Compressed)
	}
}

// TestAcceptVariantsRefused: what AcceptVariants refuses, and what then
// becomes of the blob: a variant that does not decompress to the blob
// gets it compressed here at once; the other refusals leave it waiting.
func TestAcceptVariantsRefused(t *testing.T) {
	t.Parallel()
	content := textBlob(64<<10, 11)
	header, body := madeElsewhere(t, content)
	hdr, _ := ParseBlobHeader(header)
	corrupt := slices.Clone(body)
	corrupt[hdr.Variants[0].Size/2] ^= 0xff // inside the br variant
	otherHeader, otherBody := madeElsewhere(t, textBlob(64<<10, 12))
	smallHeader, smallBody := madeElsewhere(t, textBlob(32<<10, 12))

	tests := []struct {
		name         string
		hash         string // "" for the blob's
		header       string
		body         []byte
		wantErr      error
		wantCompress bool // compressed here right away
	}{
		{"corrupt variant", "", header, corrupt, ErrHashMismatch, true},
		{"variants of another blob", "", otherHeader, otherBody, ErrHashMismatch, true},
		{"another blob's size", "", smallHeader, smallBody, ErrMalformed, false},
		{"body too short", "", header, body[:len(body)-1], ErrMalformed, false},
		{"body too long", "", header, append(slices.Clone(body), 'x'), ErrMalformed, false},
		{"bad header", "", "size=1; lzma=3", body, ErrMalformed, false},
		{"blob not stored", hashOf([]byte("nothing")), header, body, ErrNotFound, false},
		{"invalid name", "../x", header, body, ErrInvalidHash, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := waitingStore(t, dir, time.Hour)
			info, err := s.Put(t.Context(), "", bytes.NewReader(content))
			if err != nil {
				t.Fatal(err)
			}
			hash := tt.hash
			if hash == "" {
				hash = info.Hash
			}
			_, err = s.AcceptVariants(t.Context(), hash, tt.header, bytes.NewReader(tt.body))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("AcceptVariants: %v, want %v", err, tt.wantErr)
			}
			if tt.wantCompress {
				got := compressed(t, s, info.Hash)
				if len(got.Variants) == 0 || s.CompressStats().Compressed != 1 {
					t.Errorf("after refused variants: %+v, %+v; want the blob compressed here", got, s.CompressStats())
				}
				if err := s.Verify(info.Hash); err != nil {
					t.Errorf("Verify: %v", err)
				}
				return
			}
			if got, _ := s.Stat(info.Hash); !got.Pending || s.PendingCompression() != 1 {
				t.Errorf("after the refusal: Info %+v, PendingCompression %d; want still waiting", got, s.PendingCompression())
			}
			if entries, _ := os.ReadDir(dir + "/" + TempFolder); len(entries) != 0 {
				t.Errorf("temp files left: %d", len(entries))
			}
		})
	}
}

// TestVariantsWaitEnds: a blob whose variants never arrive is compressed
// here once its wait is over.
func TestVariantsWaitEnds(t *testing.T) {
	t.Parallel()
	s := waitingStore(t, t.TempDir(), 50*time.Millisecond)
	info, err := s.Put(t.Context(), "", bytes.NewReader(textBlob(16<<10, 13)))
	if err != nil {
		t.Fatal(err)
	}
	got := compressed(t, s, info.Hash) // WaitCompressed waits for waiting blobs too
	if len(got.Variants) == 0 || got.Pending {
		t.Fatalf("Info after the wait = %+v, want variants made here", got)
	}
	if st, want := s.CompressStats(), (CompressStats{Compressed: 1}); st != want {
		t.Errorf("CompressStats = %+v, want %+v", st, want)
	}
}

// TestExportVariants: only a settled blob's variants can be exported.
func TestExportVariants(t *testing.T) {
	t.Parallel()
	s := waitingStore(t, t.TempDir(), time.Hour)
	info, err := s.Put(t.Context(), "", bytes.NewReader(textBlob(16<<10, 14)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.ExportVariants(info.Hash); !errors.Is(err, ErrPending) {
		t.Errorf("ExportVariants of a pending blob: %v, want ErrPending", err)
	}
	if _, _, _, err := s.ExportVariants(hashOf([]byte("nothing"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("ExportVariants of a missing blob: %v, want ErrNotFound", err)
	}
	if err := s.Compress(t.Context(), info.Hash); err != nil {
		t.Fatal(err)
	}
	h, body, n, err := s.ExportVariants(info.Hash)
	if err != nil {
		t.Fatalf("ExportVariants: %v", err)
	}
	defer body.Close()
	hdr, err := ParseBlobHeader(h)
	if err != nil || hdr.Size != info.Size || n != hdr.Length()-hdr.Size || len(hdr.Variants) == 0 {
		t.Errorf("ExportVariants = %q (%v), length %d; want the blob's size, its variants and their length", h, err, n)
	}
}

// TestAcceptVariantsCrashStates: the states a crash inside AcceptVariants
// leaves (DESIGN.md I3) recover as a background pass's do: received
// variants still in temp/ are removed by New, which queues the pending
// blob again; variants renamed into place before the marker was removed
// are replaced by the new pass, whose files are complete and verified.
func TestAcceptVariantsCrashStates(t *testing.T) {
	t.Parallel()
	content := textBlob(64<<10, 15)
	header, body := madeElsewhere(t, content)
	hdr, _ := ParseBlobHeader(header)
	br := body[:hdr.Variants[0].Size]

	tests := []struct {
		name  string
		plant func(dir, hash string)
	}{
		{"variants received, not renamed", func(dir, hash string) {
			plant(t, dir+"/"+TempFolder+"/import-123", string(br))
		}},
		{"one variant renamed, marker still there", func(dir, hash string) {
			plant(t, dir+"/"+hash[:2]+"/"+hash+".br", string(br))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			info := putUncompressed(t, dir, content)
			tt.plant(dir, info.Hash)
			s := openTestStore(t, dir)
			got := compressed(t, s, info.Hash)
			if !slices.Equal(encodingsOf(got), []string{"br", "zstd", "gzip"}) {
				t.Errorf("variants after the restart = %v, want br, zstd, gzip", encodingsOf(got))
			}
			if err := s.Verify(info.Hash); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if files, want := filesUnder(t, dir), blobFiles(got); !slices.Equal(files, want) {
				t.Errorf("files on disk = %v, want %v", files, want)
			}
		})
	}
}
