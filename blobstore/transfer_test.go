package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// export returns a blob's transfer header and body, checking that the
// length Export reports is the body's.
func export(t *testing.T, s *Store, hash string) (string, []byte) {
	t.Helper()
	header, body, length, err := s.Export(hash)
	if err != nil {
		t.Fatalf("Export(%s): %v", hash[:8], err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("read export of %s: %v", hash[:8], err)
	}
	if got, want := int64(len(b)), length; got != want {
		t.Errorf("Export(%s): body of %d bytes, length says %d", hash[:8], got, want)
	}
	h, err := ParseBlobHeader(header)
	if err != nil {
		t.Fatalf("Export(%s) header: %v", hash[:8], err)
	}
	if got, want := h.Length(), length; got != want {
		t.Errorf("Export(%s): header %q totals %d bytes, length says %d", hash[:8], header, got, want)
	}
	return header, b
}

// rawFile returns the bytes of a stored blob file as they are on disk.
func rawFile(t *testing.T, s *Store, hash, encoding string) []byte {
	t.Helper()
	f, _, err := s.Open(hash, encoding)
	if err != nil {
		t.Fatalf("Open(%s, %q): %v", hash[:8], encoding, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// compressWith compresses b with settings Put never uses, so that a
// variant stored by Import can be told from one Put would have made.
func compressWith(t *testing.T, encoding string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch encoding {
	case EncodingBrotli:
		w := brotli.NewWriterLevel(&buf, 1)
		w.Write(b)
		w.Close()
	case EncodingZstd:
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(enc.EncodeAll(b, nil))
		enc.Close()
	case EncodingGzip:
		w, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		w.Name = "not-made-by-put"
		w.Write(b)
		w.Close()
	default:
		t.Fatalf("unknown encoding %q", encoding)
	}
	return buf.Bytes()
}

// handmade is a transfer with variants made by compressWith.
type handmade struct {
	identity []byte
	variants map[string][]byte
	order    []string // encodings, in the order sent
}

func newHandmade(t *testing.T, identity []byte, encs ...string) *handmade {
	h := &handmade{identity: identity, variants: map[string][]byte{}, order: encs}
	for _, e := range encs {
		h.variants[e] = compressWith(t, e, identity)
	}
	return h
}

func (h *handmade) header() string {
	bh := BlobHeader{Size: int64(len(h.identity))}
	for _, e := range h.order {
		bh.Variants = append(bh.Variants, Variant{Encoding: e, Size: int64(len(h.variants[e]))})
	}
	return bh.String()
}

// importHandmade stores content with variants made by compressWith, which is
// much faster than Put's best-compression passes.
func importHandmade(t *testing.T, s *Store, content []byte, encs ...string) Info {
	t.Helper()
	tr := newHandmade(t, content, encs...)
	info, err := s.Import(t.Context(), hashOf(content), tr.header(), bytes.NewReader(tr.body()))
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if got := encodingsOf(info); !slices.Equal(got, encs) {
		t.Fatalf("Import kept variants %v, want %v", got, encs)
	}
	return info
}

func (h *handmade) body() []byte {
	b := slices.Clone(h.identity)
	for _, e := range h.order {
		b = append(b, h.variants[e]...)
	}
	return b
}

func TestExportImportRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		content      []byte
		wantVariants []string
	}{
		{name: "text with every variant", content: textBlob(8<<10, 21), wantVariants: []string{"br", "zstd", "gzip"}},
		{name: "random bytes, no variant", content: randomBlob(300, 21)},
		{name: "tiny", content: []byte("hello")},
		{name: "empty", content: []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src, _ := newTestStore(t)
			dst, dstDir := newTestStore(t)
			info := put(t, src, tt.content)
			if got, want := encodingsOf(info), tt.wantVariants; !slices.Equal(got, want) {
				t.Fatalf("Put variants = %v, want %v", got, want)
			}
			header, body := export(t, src, info.Hash)
			if got, want := header, wantHeader(info); got != want {
				t.Errorf("Export header = %q, want %q", got, want)
			}

			got, err := dst.Import(t.Context(), info.Hash, header, bytes.NewReader(body))
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			want := info
			// A blob that arrives bare and may compress is queued for
			// compression on the receiver too.
			want.Pending = len(info.Variants) == 0 && len(tt.content) >= minCompressSize
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Import = %+v, want %+v", got, want)
			}
			for _, enc := range append([]string{""}, tt.wantVariants...) {
				if !bytes.Equal(rawFile(t, dst, info.Hash, enc), rawFile(t, src, info.Hash, enc)) {
					t.Errorf("file %q differs between sender and receiver", enc)
				}
			}
			if err := dst.Verify(info.Hash); err != nil {
				t.Errorf("Verify after Import: %v", err)
			}
			// A blob received without variants is tried again here
			// (random bytes: nothing kept, the marker goes).
			if err := dst.WaitCompressed(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got, want := filesUnder(t, dstDir), blobFiles(info); !slices.Equal(got, want) {
				t.Errorf("files on disk = %v, want %v", got, want)
			}
			// Durable and complete: a reopened store sees the same.
			if st, err := openTestStore(t, dstDir).Stat(info.Hash); err != nil || !reflect.DeepEqual(st, info) {
				t.Errorf("Stat after reopening = %+v, %v; want %+v", st, err, info)
			}
			// And it exports the same transfer.
			if h2, b2 := export(t, dst, info.Hash); h2 != header || !bytes.Equal(b2, body) {
				t.Errorf("export of the imported blob differs from the original export")
			}
		})
	}
}

// wantHeader is the transfer header of a stored blob.
func wantHeader(info Info) string {
	return BlobHeader{Size: info.Size, Variants: info.Variants}.String()
}

// Import keeps the variants it receives as they are: here, made with
// settings Put never uses, and without the brotli variant Put would make.
func TestImportDoesNotCompress(t *testing.T) {
	t.Parallel()
	s, dir := newTestStore(t)
	tr := newHandmade(t, textBlob(32<<10, 5), EncodingZstd, EncodingGzip)
	hash := hashOf(tr.identity)
	info, err := s.Import(t.Context(), hash, tr.header(), bytes.NewReader(tr.body()))
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if got, want := encodingsOf(info), []string{"zstd", "gzip"}; !slices.Equal(got, want) {
		t.Errorf("variants = %v, want %v", got, want)
	}
	for _, e := range tr.order {
		if got, want := rawFile(t, s, hash, e), tr.variants[e]; !bytes.Equal(got, want) {
			t.Errorf("stored %s variant (%d bytes) is not the one sent (%d bytes)", e, len(got), len(want))
		}
	}
	if got, want := filesUnder(t, dir), blobFiles(info); !slices.Equal(got, want) {
		t.Errorf("files on disk = %v, want %v", got, want)
	}
}

func TestImportRejects(t *testing.T) {
	t.Parallel()
	tr := newHandmade(t, textBlob(8<<10, 6), EncodingBrotli, EncodingGzip)
	hash := hashOf(tr.identity)
	body := tr.body()
	flipped := func(i int) []byte {
		b := slices.Clone(body)
		b[i] ^= 0x01
		return b
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		ctx     context.Context
		hash    string
		header  string
		body    io.Reader
		wantErr error
	}{
		{name: "tampered identity", body: bytes.NewReader(flipped(100)), wantErr: ErrHashMismatch},
		{name: "other blob's bytes", hash: hashOf([]byte("other")), body: bytes.NewReader(body), wantErr: ErrHashMismatch},
		{name: "truncated identity", body: bytes.NewReader(body[:len(tr.identity)-1]), wantErr: ErrMalformed},
		{name: "truncated last variant", body: bytes.NewReader(body[:len(body)-1]), wantErr: ErrMalformed},
		{name: "empty body", body: bytes.NewReader(nil), wantErr: ErrMalformed},
		{name: "one byte too many", body: bytes.NewReader(append(slices.Clone(body), 0)), wantErr: ErrMalformed},
		{name: "header says fewer variants", header: BlobHeader{Size: int64(len(tr.identity))}.String(), body: bytes.NewReader(body), wantErr: ErrMalformed},
		{name: "malformed header", header: "size=12;br=3", body: bytes.NewReader(body), wantErr: ErrMalformed},
		{name: "empty header", header: "-", body: bytes.NewReader(body), wantErr: ErrMalformed},
		{name: "invalid hash", hash: "../" + hash[3:], body: bytes.NewReader(body), wantErr: ErrInvalidHash},
		{name: "body fails midway", body: io.MultiReader(bytes.NewReader(body[:5000]), &failingReader{err: errBrokenBody}), wantErr: errBrokenBody},
		{name: "context cancelled", ctx: cancelled, body: bytes.NewReader(body), wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, dir := newTestStore(t)
			ctx, h, header := tt.ctx, tt.hash, tt.header
			if ctx == nil {
				ctx = t.Context()
			}
			if h == "" {
				h = hash
			}
			switch header {
			case "":
				header = tr.header()
			case "-":
				header = ""
			}
			_, err := s.Import(ctx, h, header, tt.body)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Import: err = %v, want %v", err, tt.wantErr)
			}
			if got := filesUnder(t, dir); len(got) != 0 {
				t.Errorf("files left after a rejected Import: %v", got)
			}
			if s.Has(hash) {
				t.Errorf("Has = true after a rejected Import")
			}
			waitAccounting(t, s)
			if blobs, size := s.Usage(); blobs != 0 || size != 0 {
				t.Errorf("Usage = %d blobs, %d bytes after a rejected Import; want 0, 0", blobs, size)
			}
		})
	}
}

// A variant that is not what it claims is dropped; the blob is stored with
// the others.
func TestImportDropsBadVariant(t *testing.T) {
	t.Parallel()
	content := textBlob(8<<10, 7)
	hash := hashOf(content)
	otherContent := textBlob(8<<10, 8) // same length, other bytes

	tests := []struct {
		name   string
		tamper func(tr *handmade)
	}{
		{name: "flipped byte in the zstd variant", tamper: func(tr *handmade) { tr.variants["zstd"][len(tr.variants["zstd"])/2] ^= 0xff }},
		{name: "zstd variant of other content", tamper: func(tr *handmade) { tr.variants["zstd"] = compressWith(t, "zstd", otherContent) }},
		{name: "zstd variant of a prefix", tamper: func(tr *handmade) { tr.variants["zstd"] = compressWith(t, "zstd", content[:len(content)-1]) }},
		{name: "zstd variant of more", tamper: func(tr *handmade) {
			tr.variants["zstd"] = compressWith(t, "zstd", append(slices.Clone(content), content...))
		}},
		{name: "zstd variant not smaller", tamper: func(tr *handmade) {
			tr.variants["zstd"] = append(tr.variants["zstd"], make([]byte, len(content))...)
		}},
		{name: "garbage as zstd", tamper: func(tr *handmade) { tr.variants["zstd"] = []byte("not zstd at all") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, dir := newTestStore(t)
			tr := newHandmade(t, content, EncodingBrotli, EncodingZstd, EncodingGzip)
			tt.tamper(tr)
			info, err := s.Import(t.Context(), hash, tr.header(), bytes.NewReader(tr.body()))
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			if got, want := encodingsOf(info), []string{"br", "gzip"}; !slices.Equal(got, want) {
				t.Errorf("variants kept = %v, want %v", got, want)
			}
			if err := s.Verify(hash); err != nil {
				t.Errorf("Verify: %v", err)
			}
			if got, want := filesUnder(t, dir), blobFiles(info); !slices.Equal(got, want) {
				t.Errorf("files on disk = %v, want %v", got, want)
			}
		})
	}
}

// Importing a blob already stored changes nothing and drains the body.
func TestImportExisting(t *testing.T) {
	t.Parallel()
	s, dir := newTestStore(t)
	content := textBlob(4<<10, 9)
	info := put(t, s, content)
	before := filesUnder(t, dir)

	tr := newHandmade(t, content, EncodingGzip)
	body := bytes.NewReader(tr.body())
	got, err := s.Import(t.Context(), info.Hash, tr.header(), body)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if !reflect.DeepEqual(got, info) {
		t.Errorf("Import = %+v, want the stored %+v", got, info)
	}
	if body.Len() != 0 {
		t.Errorf("Import left %d bytes of the body unread", body.Len())
	}
	if got := filesUnder(t, dir); !slices.Equal(got, before) {
		t.Errorf("files on disk = %v, want unchanged %v", got, before)
	}
	if bytes.Equal(rawFile(t, s, info.Hash, "gzip"), tr.variants["gzip"]) {
		t.Errorf("the stored gzip variant was replaced by the one sent")
	}
}

func TestConcurrentImportsAndPuts(t *testing.T) {
	t.Parallel()
	src, _ := newTestStore(t)
	dst, dir := newTestStore(t)
	content := textBlob(8<<10, 10)
	info := importHandmade(t, src, content, "br", "gzip")
	header, body := export(t, src, info.Hash)

	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Go(func() {
			var err error
			if i%3 == 0 {
				_, err = dst.Put(t.Context(), info.Hash, bytes.NewReader(content))
			} else {
				_, err = dst.Import(t.Context(), info.Hash, header, bytes.NewReader(body))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Put or Import: %v", err)
		}
	}
	if err := dst.Verify(info.Hash); err != nil {
		t.Errorf("Verify: %v", err)
	}
	// Whichever won (Put makes a zstd variant, the transfer has none),
	// the files and the accounting are those of one blob.
	if err := dst.WaitCompressed(t.Context()); err != nil {
		t.Fatal(err)
	}
	stored, err := dst.Stat(info.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := filesUnder(t, dir), blobFiles(stored); !slices.Equal(got, want) {
		t.Errorf("files on disk = %v, want %v", got, want)
	}
	waitAccounting(t, dst)
	if blobs, size := dst.Usage(); blobs != 1 || size != diskBytes(stored) {
		t.Errorf("Usage = %d blobs, %d bytes; want 1, %d", blobs, size, diskBytes(stored))
	}
}

func TestExportErrors(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t)
	if _, _, _, err := s.Export(hashOf([]byte("absent"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("Export of an absent blob: err = %v, want ErrNotFound", err)
	}
	if _, _, _, err := s.Export("../x"); !errors.Is(err, ErrInvalidHash) {
		t.Errorf("Export of an invalid name: err = %v, want ErrInvalidHash", err)
	}
}

// An open Export stays readable, and consistent with its header, when the
// blob is deleted while it is sent.
func TestExportSurvivesDelete(t *testing.T) {
	t.Parallel()
	src, _ := newTestStore(t)
	dst, _ := newTestStore(t)
	info := importHandmade(t, src, textBlob(8<<10, 11), "br", "zstd", "gzip")
	header, body, _, err := src.Export(info.Hash)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	if err := src.Delete(info.Hash); err != nil {
		t.Fatal(err)
	}
	got, err := dst.Import(t.Context(), info.Hash, header, body)
	if err != nil {
		t.Fatalf("Import of an export whose blob was deleted meanwhile: %v", err)
	}
	if !reflect.DeepEqual(got, info) {
		t.Errorf("Import = %+v, want %+v", got, info)
	}
}

func TestParseBlobHeader(t *testing.T) {
	t.Parallel()
	valid := []struct {
		in   string
		want BlobHeader
	}{
		{"size=0", BlobHeader{}},
		{"size=1234; br=300; zstd=310; gzip=400", BlobHeader{Size: 1234, Variants: []Variant{{"br", 300}, {"zstd", 310}, {"gzip", 400}}}},
		{"size=10; gzip=1", BlobHeader{Size: 10, Variants: []Variant{{"gzip", 1}}}},
		{"size=10; br=2; gzip=1", BlobHeader{Size: 10, Variants: []Variant{{"br", 2}, {"gzip", 1}}}},
		{"size=9223372036854775807", BlobHeader{Size: 1<<63 - 1}},
		{"size=9223372036854775806; br=1", BlobHeader{Size: 1<<63 - 2, Variants: []Variant{{"br", 1}}}},
	}
	for _, tt := range valid {
		got, err := ParseBlobHeader(tt.in)
		if err != nil {
			t.Errorf("ParseBlobHeader(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseBlobHeader(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if got := got.String(); got != tt.in {
			t.Errorf("String() = %q, want %q", got, tt.in)
		}
	}

	invalid := []string{
		"", "size", "size=", "size=-1", "size=+1", "size=01", "size=1.5", "size=1e3", "size= 1", "size=1 ",
		" size=1", "Size=1", "br=1; size=2", "size=1;br=1", "size=1;  br=1", "size=1; ", "size=1; br", "size=1; br=",
		"size=1; br=0", "size=1; zstd=1; br=1", "size=1; br=1; br=1", "size=1; deflate=1", "size=1; identity=1",
		"size=1; size=1", "size=9223372036854775808", "size=99999999999999999999",
		"size=9223372036854775807; br=1", "size=1\x00", "size=1; br=1; zstd=1; gzip=1; gzip=1",
		"size=1," + strings.Repeat("0", 200),
	}
	for _, in := range invalid {
		if h, err := ParseBlobHeader(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseBlobHeader(%q) = %+v, %v; want ErrMalformed", in, h, err)
		}
	}
}

func FuzzParseBlobHeader(f *testing.F) {
	for _, seed := range []string{
		"size=0", "size=1234; br=300; zstd=310; gzip=400", "size=10; gzip=1", "size=9223372036854775807",
		"size=01", "size=1; zstd=1; br=1", "size=1;br=1", "size=9223372036854775807; br=1", "",
		"size=1; br=1; br=1", "size=18446744073709551616",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, err := ParseBlobHeader(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseBlobHeader(%q): error %v does not wrap ErrMalformed", in, err)
			}
			return
		}
		// One spelling per header: what parses prints back the same.
		if got := h.String(); got != in {
			t.Fatalf("ParseBlobHeader(%q).String() = %q", in, got)
		}
		if len(in) > MaxBlobHeaderLen {
			t.Fatalf("accepted %d bytes, more than MaxBlobHeaderLen", len(in))
		}
		if h.Size < 0 || h.Length() < h.Size {
			t.Fatalf("ParseBlobHeader(%q) = %+v: negative or overflowing length %d", in, h, h.Length())
		}
		next := 0
		for _, v := range h.Variants {
			if v.Size < 1 {
				t.Fatalf("ParseBlobHeader(%q): empty variant %+v", in, v)
			}
			j := slices.IndexFunc(encodings[:], func(e struct{ name, ext string }) bool { return e.name == v.Encoding })
			if j < next {
				t.Fatalf("ParseBlobHeader(%q): variant %s unknown, repeated or out of order", in, v.Encoding)
			}
			next = j + 1
		}
	})
}

// diskBytes is what a blob takes on disk, as Usage counts it.
func diskBytes(info Info) int64 {
	n := info.Size
	for _, v := range info.Variants {
		n += v.Size
	}
	return n
}
