package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestPutStatOpenRoundTrip(t *testing.T) {
	t.Parallel()
	zstdFrame := func() []byte {
		enc, _ := zstd.NewWriter(nil)
		defer enc.Close()
		return enc.EncodeAll(textBlob(8<<10, 9), nil)
	}()
	png := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 4<<10)...)

	tests := []struct {
		name         string
		content      []byte
		giveWant     bool // pass the hash as want, else ""
		wantVariants []string
	}{
		{name: "compressible text", content: textBlob(8<<10, 1), wantVariants: []string{"br", "zstd", "gzip"}},
		{name: "compressible text with expected hash", content: textBlob(2<<10, 2), giveWant: true, wantVariants: []string{"br", "zstd", "gzip"}},
		{name: "big compressible text, brotli at the lower quality", content: textBlob(brotliBestMaxSize+1, 12), wantVariants: []string{"br", "zstd", "gzip"}},
		{name: "random bytes, compressed and dropped", content: randomBlob(2<<10, 1)},
		{name: "random bytes, probed", content: randomBlob(16<<10, 3)},
		{name: "random bytes, probed by samples", content: randomBlob(3*probeChunk, 2), giveWant: true},
		{name: "tiny text", content: []byte(strings.Repeat("a", minCompressSize-1))},
		{name: "empty", content: []byte{}},
		{name: "png that compresses but is not tried", content: png},
		{name: "zstd frame", content: zstdFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, dir := newTestStore(t)
			want := ""
			if tt.giveWant {
				want = hashOf(tt.content)
			}
			info, err := s.Put(t.Context(), want, bytes.NewReader(tt.content))
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			// Put answers once the identity bytes are durable; the
			// variants follow in the background.
			if len(info.Variants) != 0 {
				t.Errorf("Put variants = %v, want none before the background compression", info.Variants)
			}
			info = compressed(t, s, info.Hash)
			if got, want := info.Hash, hashOf(tt.content); got != want {
				t.Errorf("Put hash = %s, want %s", got, want)
			}
			if got, want := info.Size, int64(len(tt.content)); got != want {
				t.Errorf("Put size = %d, want %d", got, want)
			}
			if got, want := encodingsOf(info), tt.wantVariants; !slices.Equal(got, want) {
				t.Errorf("variants = %v, want %v", got, want)
			}
			for _, v := range info.Variants {
				if v.Size >= info.Size-info.Size/minSavingsDivisor {
					t.Errorf("variant %s kept with %d bytes for %d", v.Encoding, v.Size, info.Size)
				}
			}

			// Stat from the cache, then from disk in a reopened store.
			for _, st := range []*Store{s, openTestStore(t, dir)} {
				got, err := st.Stat(info.Hash)
				if err != nil {
					t.Fatalf("Stat: %v", err)
				}
				if !reflect.DeepEqual(got, info) {
					t.Errorf("Stat = %+v, want %+v", got, info)
				}
				if !st.Has(info.Hash) {
					t.Errorf("Has = false, want true")
				}
			}

			if got := readBlob(t, s, info.Hash, ""); !bytes.Equal(got, tt.content) {
				t.Errorf("identity bytes differ from the content put")
			}
			for _, v := range info.Variants {
				if got := readBlob(t, s, info.Hash, v.Encoding); !bytes.Equal(got, tt.content) {
					t.Errorf("variant %s does not decompress to the content put", v.Encoding)
				}
			}
			for _, enc := range []string{"br", "zstd", "gzip", "deflate"} {
				if _, ok := info.Variant(enc); ok {
					continue
				}
				_, _, err := s.Open(info.Hash, enc)
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("Open(%q) of a variant not kept: err = %v, want ErrNotFound", enc, err)
				}
			}
			if err := s.Verify(info.Hash); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if got, want := filesUnder(t, dir), blobFiles(info); !slices.Equal(got, want) {
				t.Errorf("files on disk = %v, want %v", got, want)
			}
		})
	}
}

func TestPutRejectsBadContent(t *testing.T) {
	t.Parallel()
	text := textBlob(1<<10, 3)
	other := hashOf([]byte("something else"))
	tests := []struct {
		name    string
		ctx     func() context.Context
		want    string
		body    io.Reader
		wantErr error
		wantMsg []string // substrings of the error
	}{
		{
			name: "hash mismatch", want: other, body: bytes.NewReader(text),
			wantErr: ErrHashMismatch, wantMsg: []string{"got " + hashOf(text), "want " + other},
		},
		{name: "invalid expected hash", want: "ABC", body: bytes.NewReader(text), wantErr: ErrInvalidHash},
		{name: "body fails midway", body: &failingReader{n: 100 << 10, err: errBrokenBody}, wantErr: errBrokenBody},
		{
			name: "context cancelled",
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			body: bytes.NewReader(text), wantErr: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, dir := newTestStore(t)
			ctx := t.Context()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			_, err := s.Put(ctx, tt.want, tt.body)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Put: err = %v, want %v", err, tt.wantErr)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("Put: error %q does not say %q", err, m)
				}
			}
			// Nothing kept: no file at all, only the empty folders.
			if got := filesUnder(t, dir); len(got) != 0 {
				t.Errorf("files left after a rejected Put: %v", got)
			}
			if s.Has(hashOf(text)) {
				t.Errorf("Has(content hash) = true after a rejected Put")
			}
		})
	}
}

func TestInvalidHash(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t)
	valid := hashOf([]byte("x"))
	names := []struct{ name, hash string }{
		{"empty", ""},
		{"too short", valid[:63]},
		{"too long", valid + "0"},
		{"uppercase", strings.ToUpper(valid)},
		{"not hex", strings.Repeat("g", 64)},
		{"path traversal", "../../../../../../../../../../../../../../../../etc/passwd/x"},
		{"traversal of hash length", "../" + valid[3:]},
	}
	for _, n := range names {
		t.Run(n.name, func(t *testing.T) {
			t.Parallel()
			ops := map[string]error{
				"Put":    func() error { _, err := s.Put(t.Context(), n.hash, strings.NewReader("x")); return err }(),
				"Stat":   func() error { _, err := s.Stat(n.hash); return err }(),
				"Open":   func() error { _, _, err := s.Open(n.hash, ""); return err }(),
				"Delete": s.Delete(n.hash),
				"Verify": s.Verify(n.hash),
			}
			if n.hash == "" {
				delete(ops, "Put") // "" means "compute the hash"
			}
			for op, err := range ops {
				if !errors.Is(err, ErrInvalidHash) {
					t.Errorf("%s(%q): err = %v, want ErrInvalidHash", op, n.hash, err)
				}
			}
			if s.Has(n.hash) {
				t.Errorf("Has(%q) = true, want false", n.hash)
			}
		})
	}
}

func TestPutIsIdempotent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content []byte
	}{
		{"compressible text", textBlob(1<<10, 4)},
		{"random bytes", randomBlob(1<<10, 4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, dir := newTestStore(t)
			first := put(t, s, tt.content)
			before, err := os.Stat(s.path(first.Hash))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"", first.Hash} {
				again, err := s.Put(t.Context(), want, bytes.NewReader(tt.content))
				if err != nil {
					t.Fatalf("Put again (want %q): %v", want, err)
				}
				if !reflect.DeepEqual(again, first) {
					t.Errorf("Put again = %+v, want %+v", again, first)
				}
			}
			// A re-put with the wrong content is still refused.
			if _, err := s.Put(t.Context(), first.Hash, strings.NewReader("other")); !errors.Is(err, ErrHashMismatch) {
				t.Errorf("Put of other content under an existing hash: err = %v, want ErrHashMismatch", err)
			}
			after, err := os.Stat(s.path(first.Hash))
			if err != nil {
				t.Fatal(err)
			}
			if !os.SameFile(before, after) {
				t.Errorf("identity file replaced by an idempotent Put")
			}
			if got, want := filesUnder(t, dir), blobFiles(first); !slices.Equal(got, want) {
				t.Errorf("files on disk = %v, want %v", got, want)
			}
		})
	}
}

func TestConcurrentPuts(t *testing.T) {
	t.Parallel()
	s, dir := newTestStore(t)
	same := textBlob(1<<10, 5)
	var distinct [][]byte
	for i := range 16 {
		if i%2 == 0 {
			distinct = append(distinct, textBlob(1<<10, uint64(100+i)))
		} else {
			distinct = append(distinct, randomBlob(1<<10, uint64(100+i)))
		}
	}

	const samePutters = 8
	sameInfos := make([]Info, samePutters)
	distinctInfos := make([]Info, len(distinct))
	var wg sync.WaitGroup
	errc := make(chan error, samePutters+len(distinct))
	for i := range samePutters {
		wg.Go(func() {
			var err error
			sameInfos[i], err = s.Put(t.Context(), hashOf(same), bytes.NewReader(same))
			errc <- err
		})
	}
	for i, b := range distinct {
		wg.Go(func() {
			var err error
			distinctInfos[i], err = s.Put(t.Context(), "", bytes.NewReader(b))
			errc <- err
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Errorf("Put: %v", err)
		}
	}
	for i, info := range sameInfos[1:] {
		// Variants may have been made between two answers: the blob is
		// the same.
		if info.Hash != sameInfos[0].Hash || info.Size != sameInfos[0].Size {
			t.Errorf("Put #%d of the same content = %+v, want %+v", i+1, info, sameInfos[0])
		}
	}

	var wantHashes, wantFiles []string
	for _, info := range append(distinctInfos, sameInfos[0]) {
		info = compressed(t, s, info.Hash)
		wantHashes = append(wantHashes, info.Hash)
		wantFiles = append(wantFiles, blobFiles(info)...)
		if err := s.Verify(info.Hash); err != nil {
			t.Errorf("Verify: %v", err)
		}
	}
	slices.Sort(wantHashes)
	slices.Sort(wantFiles)
	var walked []string
	if err := s.Walk(t.Context(), func(h string) error { walked = append(walked, h); return nil }); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if !slices.Equal(walked, wantHashes) {
		t.Errorf("Walk = %v, want %v", walked, wantHashes)
	}
	if got := filesUnder(t, dir); !slices.Equal(got, wantFiles) {
		t.Errorf("files on disk = %v, want %v", got, wantFiles)
	}
}

// TestConcurrentPutAndDelete races Puts and Deletes of one blob: whatever
// the interleaving, the blob ends either complete or absent, never partial.
func TestConcurrentPutAndDelete(t *testing.T) {
	t.Parallel()
	s, dir := newTestStore(t)
	content := textBlob(1<<10, 6)
	hash := hashOf(content)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			for range 5 {
				if i%2 == 0 {
					if _, err := s.Put(t.Context(), hash, bytes.NewReader(content)); err != nil {
						t.Errorf("Put: %v", err)
					}
				} else {
					if err := s.Delete(hash); err != nil {
						t.Errorf("Delete: %v", err)
					}
					s.Has(hash) // exercise the cache against Delete
				}
			}
		})
	}
	wg.Wait()
	if err := s.WaitCompressed(t.Context()); err != nil {
		t.Fatal(err)
	}

	info, err := s.Stat(hash)
	switch {
	case err == nil:
		if err := s.Verify(hash); err != nil {
			t.Errorf("Verify: %v", err)
		}
		if got, want := filesUnder(t, dir), blobFiles(info); !slices.Equal(got, want) {
			t.Errorf("files on disk = %v, want %v", got, want)
		}
		fresh, err := openTestStore(t, dir).Stat(hash)
		if err != nil || !reflect.DeepEqual(fresh, info) {
			t.Errorf("Stat from disk = %+v, %v; cached %+v", fresh, err, info)
		}
	case errors.Is(err, ErrNotFound):
		if got := filesUnder(t, dir); len(got) != 0 {
			t.Errorf("files left for a deleted blob: %v", got)
		}
	default:
		t.Fatalf("Stat: %v", err)
	}
}

// TestNewRemovesCrashLeftovers builds the states a crash can leave and checks
// that opening the store cleans them up without touching complete blobs.
func TestNewRemovesCrashLeftovers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTestStore(t, dir)
	kept := put(t, s, textBlob(1<<10, 7))

	orphan := hashOf([]byte("orphan"))
	leftovers := []string{
		"temp/put-123",                            // crash while receiving
		"temp/variant-456",                        // crash while compressing
		orphan[:2] + "/" + orphan + ".br",         // crash before the identity rename,
		orphan[:2] + "/" + orphan + ".gz",         // or inside a Delete
		orphan[:2] + "/" + orphan + ".zst",        //
		kept.Hash[:2] + "/" + "README.not-a-blob", // not ours: left alone
	}
	for _, p := range leftovers {
		plant(t, filepath.Join(dir, p), "partial")
	}
	if err := os.MkdirAll(filepath.Join(dir, TempFolder, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if s.Has(orphan) {
		t.Errorf("Has(orphan) = true before cleanup: a variant without identity must not be visible")
	}
	if _, _, err := s.Open(orphan, "br"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open(orphan, br): err = %v, want ErrNotFound", err)
	}

	s = openTestStore(t, dir)
	want := append(blobFiles(kept), kept.Hash[:2]+"/README.not-a-blob")
	slices.Sort(want)
	if got := filesUnder(t, dir); !slices.Equal(got, want) {
		t.Errorf("files after New = %v, want %v", got, want)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, TempFolder)); len(entries) != 0 {
		t.Errorf("tmp not empty after New: %v", entries)
	}
	if err := s.Verify(kept.Hash); err != nil {
		t.Errorf("Verify(kept): %v", err)
	}
}

// TestPutRepairsOrphanVariants: a variant left without its identity by a
// crash is gone after the restart, and the next Put of that content gets
// only the variants made for it.
func TestPutRepairsOrphanVariants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		content      []byte
		orphans      []string // extensions of garbage variants planted
		wantVariants []string
	}{
		{"compressible text over garbage variants", textBlob(1<<10, 8), []string{".br", ".gz"}, []string{"br", "zstd", "gzip"}},
		{"random bytes over garbage variants", randomBlob(1<<10, 8), []string{".br", ".zst", ".gz"}, nil},
		{"tiny text over a garbage variant", []byte("tiny"), []string{".zst"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, dir := newTestStore(t)
			hash := hashOf(tt.content)
			for _, ext := range tt.orphans {
				plant(t, s.path(hash)+ext, "garbage")
			}
			s.Close()
			s = openTestStore(t, dir) // the restart after the crash
			info := put(t, s, tt.content)
			if got, want := encodingsOf(info), tt.wantVariants; !slices.Equal(got, want) {
				t.Errorf("variants = %v, want %v", got, want)
			}
			if err := s.Verify(hash); err != nil {
				t.Errorf("Verify: %v", err)
			}
			for _, v := range info.Variants {
				if got := readBlob(t, s, hash, v.Encoding); !bytes.Equal(got, tt.content) {
					t.Errorf("variant %s does not decompress to the content put", v.Encoding)
				}
			}
			if got, want := filesUnder(t, dir), blobFiles(info); !slices.Equal(got, want) {
				t.Errorf("files on disk = %v, want %v", got, want)
			}
		})
	}
}

// A Delete that fails partway (here: a variant it cannot remove) leaves
// variant files without their identity in a running store; the next Put
// of that content removes them, so the blob shows only its own variants
// (DESIGN.md, I18).
func TestPutAfterAFailedDeleteRemovesItsVariants(t *testing.T) {
	t.Parallel()
	s, dir := newTestStore(t)
	content := []byte("tiny: no variants of its own")
	info := put(t, s, content)
	base := s.path(info.Hash)
	plant(t, base+".zst/in-the-way", "a folder Delete cannot remove")
	plant(t, base+".gz", "garbage")
	if err := s.Delete(info.Hash); err == nil {
		t.Fatal("Delete with a variant it cannot remove: nil error, want one")
	}
	if s.Has(info.Hash) {
		t.Fatal("blob visible after its identity was removed")
	}
	if err := os.RemoveAll(base + ".zst"); err != nil {
		t.Fatal(err)
	}
	info = put(t, s, content)
	if got, want := filesUnder(t, dir), blobFiles(info); !slices.Equal(got, want) {
		t.Errorf("files on disk = %v, want %v", got, want)
	}
	if err := s.Verify(info.Hash); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestVerifyDetectsCorruption(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		corrupt string // extension of the file to damage; "-" = none
		wantErr error
	}{
		{"intact", "-", nil},
		{"identity byte flipped", "", ErrHashMismatch},
		{"brotli byte flipped", ".br", ErrHashMismatch},
		{"zstd byte flipped", ".zst", ErrHashMismatch},
		{"gzip byte flipped", ".gz", ErrHashMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newTestStore(t)
			info := put(t, s, textBlob(2<<10, 10))
			if len(info.Variants) != 3 {
				t.Fatalf("variants = %v, want all three", encodingsOf(info))
			}
			if tt.corrupt != "-" {
				flipByte(t, s.path(info.Hash)+tt.corrupt)
			}
			err := s.Verify(info.Hash)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Errorf("Verify: err = %v, want %v", err, tt.wantErr)
			}
		})
	}
	t.Run("missing blob", func(t *testing.T) {
		t.Parallel()
		s, _ := newTestStore(t)
		if err := s.Verify(hashOf([]byte("absent"))); !errors.Is(err, ErrNotFound) {
			t.Errorf("Verify: err = %v, want ErrNotFound", err)
		}
	})
}

func TestDelete(t *testing.T) {
	t.Parallel()
	s, dir := newTestStore(t)
	content := textBlob(1<<10, 11)
	other := put(t, s, randomBlob(1<<10, 11))
	info := put(t, s, content)
	if _, err := s.Stat(info.Hash); err != nil { // now cached
		t.Fatalf("Stat: %v", err)
	}

	if err := s.Delete(info.Hash); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if s.Has(info.Hash) {
		t.Errorf("Has = true after Delete")
	}
	if _, err := s.Stat(info.Hash); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat after Delete: err = %v, want ErrNotFound", err)
	}
	for _, enc := range []string{"", "br", "zstd", "gzip"} {
		if _, _, err := s.Open(info.Hash, enc); !errors.Is(err, ErrNotFound) {
			t.Errorf("Open(%q) after Delete: err = %v, want ErrNotFound", enc, err)
		}
	}
	if got, want := filesUnder(t, dir), blobFiles(other); !slices.Equal(got, want) {
		t.Errorf("files after Delete = %v, want %v", got, want)
	}
	if err := s.Delete(info.Hash); err != nil {
		t.Errorf("Delete again: %v, want nil (idempotent)", err)
	}
	again := put(t, s, content)
	if !reflect.DeepEqual(again, info) {
		t.Errorf("Put after Delete = %+v, want %+v", again, info)
	}
	if err := s.Verify(info.Hash); err != nil {
		t.Errorf("Verify after re-Put: %v", err)
	}
}

func TestWalk(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t)
	var want []string
	for i := range 5 {
		want = append(want, put(t, s, randomBlob(200, uint64(i))).Hash)
	}
	slices.Sort(want)

	t.Run("visits every blob in hash order", func(t *testing.T) {
		t.Parallel()
		var got []string
		if err := s.Walk(t.Context(), func(h string) error { got = append(got, h); return nil }); err != nil {
			t.Fatalf("Walk: %v", err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Walk = %v, want %v", got, want)
		}
	})
	t.Run("stops at the first error", func(t *testing.T) {
		t.Parallel()
		stop := errors.New("stop")
		n := 0
		err := s.Walk(t.Context(), func(string) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("Walk: err = %v after %d calls, want %v after 1", err, n, stop)
		}
	})
	t.Run("stops when the context is done", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := s.Walk(ctx, func(string) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Walk: err = %v, want context.Canceled", err)
		}
	})
}

func TestAlreadyCompressed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		head []byte
		want bool
	}{
		{"png", []byte("\x89PNG\r\n\x1a\n...."), true},
		{"jpeg", []byte("\xff\xd8\xff\xe0\x00\x10JFIF"), true},
		{"gif", []byte("GIF89a......"), true},
		{"webp", []byte("RIFF\x00\x00\x00\x00WEBPVP8 "), true},
		{"avif", []byte("\x00\x00\x00\x1cftypavif\x00\x00\x00\x00"), true},
		{"mp4", []byte("\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00"), true},
		{"webm", []byte("\x1a\x45\xdf\xa3...."), true},
		{"mp3", []byte("ID3\x03\x00\x00\x00...."), true},
		{"zip", []byte("PK\x03\x04........"), true},
		{"gzip", []byte("\x1f\x8b\x08\x00...."), true},
		{"zstd", []byte("\x28\xb5\x2f\xfd...."), true},
		{"xz", []byte("\xfd7zXZ\x00...."), true},
		{"woff2", []byte("wOF2\x00\x01\x00\x00"), true},
		{"html", []byte("<!doctype html><html>"), false},
		{"svg", []byte("<svg xmlns=\"http://www.w3.org/2000/svg\">"), false},
		{"json", []byte(`{"a": 1}`), false},
		{"pdf", []byte("%PDF-1.7\n"), false},
		{"wav", []byte("RIFF\x00\x00\x00\x00WAVEfmt "), false},
		{"ttf", []byte("\x00\x01\x00\x00\x00\x10"), false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := alreadyCompressed(tt.head); got != tt.want {
				t.Errorf("alreadyCompressed(%q) = %v, want %v", tt.head, got, tt.want)
			}
		})
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  func(t *testing.T) Config
	}{
		{"empty dir", func(*testing.T) Config { return Config{} }},
		{"dir is a file", func(t *testing.T) Config {
			p := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return Config{Dir: p}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := New(tt.cfg(t)); err == nil {
				t.Errorf("New: err = nil, want an error")
			}
		})
	}
	if got := DefaultConfig(); got.Dir == "" || got.Logger == nil {
		t.Errorf("DefaultConfig() = %+v, want a Dir and a Logger", got)
	}
}
