package blobstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/atoll-hosting/atoll/internal/ctxio"
	"github.com/atoll-hosting/atoll/internal/osfile"
)

// The transfer format moves one blob between nodes together with the
// compressed variants its sender already made, so that the receiver never
// compresses anything: the CPU of Put's three compression passes is spent
// once per blob in the cluster, not once per copy.
//
// A transfer is a header, which describes the parts, and a body, which is the
// parts one after the other with nothing in between:
//
//	header: size=<n>[; br=<n>][; zstd=<n>][; gzip=<n>]
//	body:   <identity bytes><br bytes><zstd bytes><gzip bytes>
//
// Each <n> is a length in bytes, in decimal. The rules, all enforced by
// ParseBlobHeader:
//
//   - size comes first and may be 0; each variant length is at least 1;
//   - variants appear at most once each, in the order br, zstd, gzip (that of
//     Info.Variants), and the body holds them in the order listed;
//   - parts are separated by exactly "; " (semicolon, one space); numbers
//     have no sign and no leading zeros; no other key, space or character is
//     accepted, and the header is at most MaxBlobHeaderLen bytes;
//   - the total length fits in an int64.
//
// So a header that parses has exactly one spelling (BlobHeader.String gives
// it back), and a receiver that does not know an encoding rejects the
// transfer instead of misreading the body. Adding an encoding therefore needs
// every node upgraded first, or a new header name.
//
// The hash is not part of the format: it names the blob in the request (the
// URL path on the wire), and the receiver checks the bytes against it.
//
// On the peer protocol (package peer) the header travels as the HTTP header
// HeaderBlob and the body as the HTTP body, whose Content-Length is
// BlobHeader.Length.

// MaxBlobHeaderLen bounds the length of a transfer header. The longest valid
// header, with four 19-digit numbers, is 87 bytes.
const MaxBlobHeaderLen = 128

// BlobHeader is the parsed transfer header: the length of each part of a
// transfer body.
type BlobHeader struct {
	Size     int64     // length of the identity bytes
	Variants []Variant // in order br, zstd, gzip; only those sent
}

// Length returns the length of the transfer body the header describes.
func (h BlobHeader) Length() int64 {
	n := h.Size
	for _, v := range h.Variants {
		n += v.Size
	}
	return n
}

// String returns the header in its only valid spelling, e.g.
// "size=1234; br=300; zstd=310; gzip=400".
func (h BlobHeader) String() string {
	var b strings.Builder
	b.WriteString("size=")
	b.WriteString(strconv.FormatInt(h.Size, 10))
	for _, v := range h.Variants {
		b.WriteString("; ")
		b.WriteString(v.Encoding)
		b.WriteByte('=')
		b.WriteString(strconv.FormatInt(v.Size, 10))
	}
	return b.String()
}

// ParseBlobHeader parses a transfer header (see the format above). Any
// deviation is an error wrapping ErrMalformed.
func ParseBlobHeader(s string) (BlobHeader, error) {
	bad := func(why string) (BlobHeader, error) {
		return BlobHeader{}, fmt.Errorf("blob transfer header %.*q: %s: %w", MaxBlobHeaderLen, s, why, ErrMalformed)
	}
	if len(s) > MaxBlobHeaderLen {
		return bad("too long")
	}
	var h BlobHeader
	next := 0 // index in encodings of the first variant still allowed
	total := int64(0)
	for i, part := range strings.Split(s, "; ") {
		key, val, ok := strings.Cut(part, "=")
		if !ok {
			return bad(fmt.Sprintf("part %d is not key=length", i+1))
		}
		n, ok := parseLength(val)
		if !ok {
			return bad(fmt.Sprintf("bad length %q", val))
		}
		if total > (1<<63-1)-n {
			return bad("total length overflows")
		}
		total += n
		if i == 0 {
			if key != "size" {
				return bad("does not start with size=")
			}
			h.Size = n
			continue
		}
		j := next
		for j < len(encodings) && encodings[j].name != key {
			j++
		}
		if j == len(encodings) {
			return bad(fmt.Sprintf("unknown, repeated or misplaced part %q", key))
		}
		if n == 0 {
			return bad(fmt.Sprintf("empty %s variant", key))
		}
		h.Variants = append(h.Variants, Variant{Encoding: key, Size: n})
		next = j + 1
	}
	return h, nil
}

// parseLength parses a decimal int64 without sign or leading zeros.
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 19 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// Export opens a stored blob for sending to another node: header describes
// the parts (see BlobHeader), body streams them (identity bytes, then every
// stored variant in the order br, zstd, gzip) and length is the body's total
// length. The caller closes body. The error wraps ErrNotFound when the blob is
// not stored, ErrInvalidHash for a malformed name.
//
// Export reads what is on disk without verifying it: the receiver does
// (Import). Lengths are those of the files opened, and an open file stays
// readable even if the blob is deleted meanwhile, so the header always
// matches the body. Export does not count as an access for EvictLRU:
// replication traffic must not keep cached copies alive.
func (s *Store) Export(hash string) (header string, body io.ReadCloser, length int64, err error) {
	h, eb, err := s.export(hash, true)
	if err != nil {
		return "", nil, 0, err
	}
	return h.String(), eb, h.Length(), nil
}

// export is Export, with the header parsed; without withIdentity the body
// holds the variants only (ExportVariants).
func (s *Store) export(hash string, withIdentity bool) (_ BlobHeader, _ *exportBody, err error) {
	if !validHash(hash) {
		return BlobHeader{}, nil, fmt.Errorf("export blob %q: %w", hash, ErrInvalidHash)
	}
	base := s.path(hash)
	eb := &exportBody{}
	defer func() {
		if err != nil {
			eb.Close()
		}
	}()
	open := func(path string) (*os.File, int64, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, err
		}
		eb.files = append(eb.files, f)
		fi, err := f.Stat()
		if err != nil {
			return nil, 0, err
		}
		return f, fi.Size(), nil
	}
	// The identity first: once it is open, every variant file present
	// belongs to the blob (I1, I3), and stays complete.
	f, size, err := open(base)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return BlobHeader{}, nil, fmt.Errorf("export blob %s: %w", hash, ErrNotFound)
		}
		return BlobHeader{}, nil, fmt.Errorf("export blob %s: %w", hash, err)
	}
	h := BlobHeader{Size: size}
	var readers []io.Reader
	if withIdentity {
		readers = append(readers, io.LimitReader(f, size))
	}
	for _, e := range encodings {
		f, n, err := open(base + e.ext)
		if errors.Is(err, os.ErrNotExist) {
			continue // not kept, or deleted meanwhile
		}
		if err != nil {
			return BlobHeader{}, nil, fmt.Errorf("export blob %s variant %s: %w", hash, e.name, err)
		}
		if n == 0 {
			continue // cannot be valid; the format has no empty variants
		}
		h.Variants = append(h.Variants, Variant{Encoding: e.name, Size: n})
		readers = append(readers, io.LimitReader(f, n))
	}
	eb.r = io.MultiReader(readers...)
	return h, eb, nil
}

// exportBody reads the parts of an Export and closes their files.
type exportBody struct {
	r     io.Reader
	files []*os.File
}

func (b *exportBody) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *exportBody) Close() error {
	var errs []error
	for _, f := range b.files {
		errs = append(errs, f.Close())
	}
	b.files = nil
	return errors.Join(errs...)
}

// Import stores a blob received from another node: header and body are what
// the sender's Export returned. It makes the same promises as Put: when it
// returns nil the blob is fsynced and visible; otherwise nothing of it is
// kept. Import never compresses anything: it keeps the variants it received.
//
// Import streams the identity bytes into a temp file while hashing them, and
// fails with an error wrapping
//   - ErrInvalidHash if hash is not a valid name (before reading body);
//   - ErrMalformed if header does not parse, or the body ends before or goes
//     on after the length the header gives;
//   - ErrHashMismatch if the identity bytes do not hash to hash;
//   - ErrNoSpace if the disk is full or below Config.MinFreeBytes (before
//     reading body when it already is);
//
// and with the read error if reading body fails. A variant that does not
// decompress to exactly the identity bytes, or that is not smaller than
// them, is dropped with a warning in the log and the rest of the blob is
// stored: the identity bytes are the truth, and refusing the blob because of
// one bad variant would keep a node from getting a copy the cluster needs
// (the sender's own scrubber deals with its corrupt variant). The returned
// Info lists the variants kept.
//
// If the blob is already stored, Import reads and discards the body (so an
// HTTP connection can be reused) and returns the stored Info. Concurrent
// Imports and Puts of one blob are safe: one stores it, the others return
// its Info.
func (s *Store) Import(ctx context.Context, hash, header string, body io.Reader) (_ Info, err error) {
	return s.importBlob(ctx, hash, header, body, true)
}

// importBlob is Import; with durable false it stores a cache copy
// (ImportCache, cachecopy.go): the same checks, no fsync before answering.
func (s *Store) importBlob(ctx context.Context, hash, header string, body io.Reader, durable bool) (_ Info, err error) {
	if !validHash(hash) {
		return Info{}, fmt.Errorf("import blob %q: %w", hash, ErrInvalidHash)
	}
	hdr, err := ParseBlobHeader(header)
	if err != nil {
		return Info{}, fmt.Errorf("import blob %s: %w", hash, err)
	}
	if info, err := s.Stat(hash); err == nil {
		s.acct.touch(hash)
		io.CopyBuffer(io.Discard, io.LimitReader(ctxio.NewReader(ctx, body), hdr.Length()+1), make([]byte, 32<<10))
		return info, nil
	}
	// A full disk (space.go): refused before the body is read, or wrapped
	// in ErrNoSpace when a write finds it.
	defer func() { err = noSpace(err) }()
	if err := s.checkSpace(); err != nil {
		return Info{}, fmt.Errorf("import blob %s: %w", hash, err)
	}
	in := &incoming{s: s, hash: hash, hdr: hdr}
	defer in.cleanup()
	info, err := in.store(ctx, ctxio.NewReader(ctx, body), durable)
	if err != nil {
		return Info{}, fmt.Errorf("import blob %s: %w", hash, err)
	}
	return info, nil
}

// incoming is one Import under way: the temp files of its parts, until
// they are published or cleanup removes them.
type incoming struct {
	s    *Store
	hash string
	hdr  BlobHeader

	identity     *os.File
	identityPath string        // "" once published
	variants     []variantFile // path "" once published or dropped
	files        []*os.File    // the open temp files of variants, index for index
}

// store runs the steps of DESIGN.md I8 once the space check has passed.
func (in *incoming) store(ctx context.Context, body io.Reader, durable bool) (Info, error) {
	if err := in.receive(body); err != nil {
		return Info{}, err
	}
	if err := in.dropBadVariants(ctx); err != nil {
		return Info{}, err
	}
	if err := in.sync(durable); err != nil {
		return Info{}, err
	}
	return in.commit(ctx, durable)
}

// cleanup closes the temp files and removes those not published.
func (in *incoming) cleanup() {
	if in.identity != nil {
		in.identity.Close()
	}
	for _, f := range in.files {
		f.Close()
	}
	if in.identityPath != "" {
		in.s.removeBestEffort(in.identityPath)
	}
	in.s.removeTemps(in.variants)
}

// receive is step 1: it streams every part of body to its own temp file,
// hashing the identity bytes on the way, and checks that the identity
// bytes hash to the name and that body ends where the header says.
func (in *incoming) receive(body io.Reader) error {
	buf := make([]byte, 128<<10)
	hasher := sha256.New()
	f, err := in.receivePart(body, buf, "the identity bytes", in.hdr.Size, hasher)
	if f != nil {
		in.identity, in.identityPath = f, f.Name()
	}
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(hasher.Sum(nil)); got != in.hash {
		return fmt.Errorf("got %s, want %s: %w", got, in.hash, ErrHashMismatch)
	}
	return in.receiveVariants(body, buf)
}

// receiveVariants streams the variant parts of body, the rest of a
// transfer after its identity bytes, each to its own temp file, and checks
// that body ends where the header says.
func (in *incoming) receiveVariants(body io.Reader, buf []byte) error {
	for _, v := range in.hdr.Variants {
		f, err := in.receivePart(body, buf, "variant "+v.Encoding, v.Size, nil)
		if f != nil {
			in.variants = append(in.variants, variantFile{encoding: v.Encoding, path: f.Name(), size: v.Size})
			in.files = append(in.files, f)
		}
		if err != nil {
			return err
		}
	}
	var extra [1]byte
	switch n, err := io.ReadFull(body, extra[:]); {
	case n > 0:
		return fmt.Errorf("body longer than the %d bytes its header gives: %w", in.hdr.Length(), ErrMalformed)
	case !errors.Is(err, io.EOF):
		return fmt.Errorf("read body: %w", err)
	}
	return nil
}

// receivePart copies the next n bytes of body, named part, into a new temp
// file, and into hw too unless it is nil. It returns the file whenever it
// was created, also with an error, so that cleanup removes it.
func (in *incoming) receivePart(body io.Reader, buf []byte, part string, n int64, hw io.Writer) (*os.File, error) {
	f, err := osfile.CreateTemp(in.s.tmp, "import-")
	if err != nil {
		return nil, err
	}
	var w io.Writer = f
	if hw != nil {
		w = io.MultiWriter(f, hw)
	}
	got, err := io.CopyBuffer(w, io.LimitReader(body, n), buf)
	if err != nil {
		return f, fmt.Errorf("read %s: %w", part, err)
	}
	if got < n {
		return f, fmt.Errorf("body ended after %d of the %d bytes of %s: %w (%w)", got, n, part, ErrMalformed, io.ErrUnexpectedEOF)
	}
	return f, nil
}

// dropBadVariants is the first half of step 2: it checks every received
// variant, read back from the page cache (I9), and drops with a warning
// those not smaller than the identity bytes or not decompressing to them.
func (in *incoming) dropBadVariants(ctx context.Context) error {
	kept := make([]variantFile, 0, len(in.variants))
	keptFiles := make([]*os.File, 0, len(in.files))
	for i, v := range in.variants {
		f := in.files[i]
		var err error
		if v.size >= in.hdr.Size {
			err = fmt.Errorf("%d bytes for %d identity bytes: %w", v.size, in.hdr.Size, errVariantNotSmaller)
		} else {
			err = checkVariant(ctx, f, v.encoding, v.size, in.hash, in.hdr.Size)
		}
		if errors.Is(err, ErrHashMismatch) || errors.Is(err, errVariantNotSmaller) {
			in.s.log.Warn("dropped a received variant", "blob", in.hash, "encoding", v.encoding, "err", err)
			f.Close()
			in.s.removeBestEffort(v.path)
			in.variants[i].path = ""
			continue
		}
		if err != nil {
			return fmt.Errorf("variant %s: %w", v.encoding, err)
		}
		kept = append(kept, v)
		keptFiles = append(keptFiles, f)
	}
	in.variants, in.files = kept, keptFiles
	return nil
}

// sync is the second half of step 2: the kept variants and the identity
// are fsynced together, one disk round trip instead of one per file (the
// rename order of I2 is unchanged: nothing is renamed before all of them
// are durable). A cache copy skips the fsync (I11). The variant files are
// closed either way.
func (in *incoming) sync(durable bool) error {
	if durable {
		if err := syncFiles(slices.Concat(in.files, []*os.File{in.identity})); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	for _, f := range in.files {
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// commit is steps 3 and 4: under the per-hash lock, unless a concurrent
// Put or Import stored the blob first, it is committed as Put commits
// (I2). A blob received without variants (its sender had not made them
// yet, background.go) and that may compress gets its pending marker: each
// node compresses the blobs that reach it bare.
func (in *incoming) commit(ctx context.Context, durable bool) (Info, error) {
	unlock := in.s.locks.lock(in.hash)
	defer unlock()
	if info, stored, err := in.s.storedOrRoom(in.hash); err != nil || stored {
		return info, err
	}
	pending := false
	if len(in.variants) == 0 {
		var err error
		if pending, err = mayCompress(in.identity, in.hdr.Size); err != nil {
			return Info{}, err
		}
	}
	if err := in.identity.Close(); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	info, err := in.s.commit(in.hash, in.hdr.Size, in.identityPath, in.variants, pending, durable)
	if err != nil {
		return Info{}, err
	}
	in.identityPath = ""
	return info, nil
}

// errVariantNotSmaller drops a received variant that is not smaller than its
// identity bytes: serving it would cost more than serving the identity.
var errVariantNotSmaller = errors.New("variant not smaller than the blob")

// maxImportZstdWindow is the largest zstd window a received variant may
// need: RFC 8878 lets HTTP clients refuse bigger ones, and Put never makes
// them.
const maxImportZstdWindow = 8 << 20

// checkVariant reads the variant file f (n bytes) and returns nil if it
// decompresses to exactly size bytes hashing to hash, an error wrapping
// ErrHashMismatch if it does not (including a zstd frame that needs a
// window above maxImportZstdWindow), and other errors for read failures. At
// most size+1 bytes are decompressed, so a decompression bomb costs no more
// than a valid variant.
func checkVariant(ctx context.Context, f *os.File, encoding string, n int64, hash string, size int64) error {
	src := &errTracker{r: ctxio.NewReader(ctx, io.NewSectionReader(f, 0, n))}
	var d io.Reader
	switch encoding {
	case EncodingBrotli:
		d = brotli.NewReader(src)
	case EncodingZstd:
		zd, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxImportZstdWindow))
		if err != nil {
			return err
		}
		defer zd.Close()
		d = zd
	case EncodingGzip:
		zr, err := gzip.NewReader(src)
		if err != nil {
			if src.err != nil {
				return src.err
			}
			return fmt.Errorf("%w: %v", ErrHashMismatch, err)
		}
		defer zr.Close()
		d = zr
	default:
		return fmt.Errorf("unknown encoding %q", encoding)
	}
	h := sha256.New()
	got, err := io.CopyBuffer(h, io.LimitReader(d, size+1), make([]byte, 64<<10))
	switch {
	case src.err != nil:
		return src.err
	case err != nil:
		return fmt.Errorf("does not decompress: %v: %w", err, ErrHashMismatch)
	case got > size:
		return fmt.Errorf("decompresses to more than %d bytes: %w", size, ErrHashMismatch)
	case got < size:
		return fmt.Errorf("decompresses to %d bytes, want %d: %w", got, size, ErrHashMismatch)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != hash {
		return fmt.Errorf("decompresses to %s: %w", sum, ErrHashMismatch)
	}
	return nil
}

// syncFiles fsyncs files concurrently and returns the first error: the
// file system commits them together rather than one after the other.
func syncFiles(files []*os.File) error {
	if len(files) == 1 {
		return files[0].Sync()
	}
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	for i, f := range files {
		wg.Go(func() { errs[i] = f.Sync() })
	}
	wg.Wait()
	return errors.Join(errs...)
}
