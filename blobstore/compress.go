package blobstore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/atoll-hosting/atoll/internal/ctxio"
	"github.com/atoll-hosting/atoll/internal/osfile"
)

// Compression policy. Variants are computed once, at ingest, and served many
// times, but ingest must keep up with the disk (bench/RESULTS.md's ingest
// target: a deploy at >= 50% of R x bytes / disk bandwidth), so the levels are the best ones that cost at
// most ~0.05 CPU-second per MB of text for all three variants together.
//
// Measured on the bench machine (AMD EPYC, one core, CPU time, HTML-like
// text; ratio = compressed/identity), 16 KiB / 128 KiB / 1 MiB:
//
//	brotli q11      0.3 MB/s  ratio 0.254 / 0.216 / -      (a 1 MiB blob: ~4 s)
//	brotli q9       0.6 / 8.8 MB/s          0.274 / 0.231
//	brotli q6       24 / 17 / 23 MB/s       0.276 / 0.254 / 0.242
//	brotli q5       33 / 24 / 33 MB/s       0.279 / 0.262 / 0.250
//	brotli q4       38 / 47 / 46 MB/s       0.300 / 0.281 / 0.252
//	zstd best       27 / 31 / 33 MB/s       0.279 / 0.242 / 0.221
//	zstd better     170 / 93 / 157 MB/s     0.289 / 0.254 / 0.237
//	gzip 9          28 / 14 / 13 MB/s       0.278 / 0.242 / 0.234
//	gzip 6          93 / 153 / 164 MB/s     0.287 / 0.259 / 0.253
//
// So: brotli quality 5 up to brotliBestMaxSize and 4 above (q4 matches q5's
// ratio on big blobs, 40% faster); zstd "better"; gzip level 6. That is
// ~0.045 CPU-s/MB (about 22 MB/s of text per core for the three variants),
// against ~3.5 CPU-s/MB with brotli 11 + zstd best + gzip 9. The price is
// 2-10% bigger variants than the best levels. Quality 11 for brotli would
// pay off for hot files: re-compressing them in the background after
// ingest, and swapping the variant in atomically, is the way to get both.
const (
	// minCompressSize: below this, a variant saves less than a TCP
	// segment and costs an extra file; not worth it.
	minCompressSize = 256
	// minSavingsDivisor: a variant is kept only when it is at least
	// size/minSavingsDivisor (5%) smaller than the identity bytes.
	minSavingsDivisor = 20
	// brotliBestMaxSize: blobs up to this size get brotliBestQuality,
	// bigger ones brotliBigQuality.
	brotliBestMaxSize = 1 << 20
	brotliBestQuality = 5
	brotliBigQuality  = 4
	brotliMinLGWin    = 10
	brotliMaxLGWin    = 22 // the library's default, a 4 MiB window
	// zstdLevel and gzipLevel: see the table above.
	zstdLevel = zstd.SpeedBetterCompression
	gzipLevel = 6
	// probeMinSize: blobs this big or bigger are first sampled (see
	// worthCompressing) with fast zstd; when the sample saves under
	// 1/probeSavingsDivisor (~3%), the blob is taken as incompressible
	// and the three expensive passes are skipped. Smaller blobs are cheap
	// to compress and too small for the probe's frame overhead to be
	// negligible.
	probeMinSize          = 4 << 10
	probeChunk            = 64 << 10
	probeSavingsDivisor   = 32
	zstdMaxWindow         = 8 << 20 // RFC 8878: HTTP decoders need not accept more
	compressCopyBufferLen = 64 << 10
)

// errNotSmaller stops a compression pass as soon as its output is too big to
// be kept.
var errNotSmaller = errors.New("variant not small enough")

// compressSlots bounds the compression passes running at once in the
// process, so a burst of uploads cannot take every core from serving.
var compressSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))

// probeEncoder is shared by all stores; EncodeAll is safe for concurrent use.
var probeEncoder = sync.OnceValue(func() *zstd.Encoder {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(err) // only bad options fail, and these are constant
	}
	return enc
})

// variantFile is a compressed variant written and fsynced in the temp folder.
type variantFile struct {
	encoding string // "br", "zstd" or "gzip"
	path     string // temp file; "" once renamed into place
	size     int64
}

// worthTrying reports whether the compression passes are worth running on
// src (the size identity bytes): not for tiny blobs, content that sniffs as
// compressed already, or (from probeMinSize up) a sample that fast zstd
// does not shrink.
func (s *Store) worthTrying(src *os.File, size int64) (bool, error) {
	if ok, err := mayCompress(src, size); err != nil || !ok {
		return false, err
	}
	if size >= probeMinSize {
		return worthCompressing(src, size)
	}
	return true, nil
}

// writeVariant compresses src into a fsynced temp file. kept is false, and
// no file is left, when the result would not be small enough to keep.
func (s *Store) writeVariant(ctx context.Context, src io.ReaderAt, size int64, encoding string) (v variantFile, kept bool, err error) {
	// The slot bounds CPU, so it is held while compressing only, not
	// during the fsync: holding it there left the cores idle while every
	// slot waited on the disk (ingest ran at 4 MB/s on the bench machine).
	select {
	case compressSlots <- struct{}{}:
	case <-ctx.Done():
		return variantFile{}, false, ctx.Err()
	}
	slot := true
	release := func() {
		if slot {
			slot = false
			<-compressSlots
		}
	}
	defer release()

	f, err := osfile.CreateTemp(s.tmp, "variant-")
	if err != nil {
		return variantFile{}, false, err
	}
	defer func() {
		if !kept {
			f.Close()
			s.removeBestEffort(f.Name())
		}
	}()

	bw := bufio.NewWriterSize(f, 64<<10)
	lw := &limitWriter{w: bw, max: size - size/minSavingsDivisor}
	zw, err := newCompressor(ctx, encoding, lw, size)
	if err != nil {
		return variantFile{}, false, err
	}
	in := ctxio.NewReader(ctx, io.NewSectionReader(src, 0, size))
	_, err = io.CopyBuffer(zw, in, make([]byte, compressCopyBufferLen))
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = bw.Flush()
	}
	release()
	if lw.exceeded {
		// Whatever error the compressor made of errNotSmaller.
		return variantFile{}, false, nil
	}
	if err != nil {
		return variantFile{}, false, fmt.Errorf("compress %s: %w", encoding, err)
	}
	if err := f.Sync(); err != nil {
		return variantFile{}, false, fmt.Errorf("compress %s: sync: %w", encoding, err)
	}
	if err := f.Close(); err != nil {
		return variantFile{}, false, fmt.Errorf("compress %s: %w", encoding, err)
	}
	return variantFile{encoding: encoding, path: f.Name(), size: lw.n}, true, nil
}

// newCompressor returns the writer that compresses size bytes into w with
// the settings of the compression policy. Close returns pooled state.
func newCompressor(ctx context.Context, encoding string, w io.Writer, size int64) (io.WriteCloser, error) {
	switch encoding {
	case EncodingBrotli:
		q := brotliBestQuality
		if size > brotliBestMaxSize {
			q = brotliBigQuality
		}
		// A window no bigger than the blob (as the reference encoder
		// does with a size hint) saves the encoder's memory and time on
		// small blobs and the decoder's memory, for the same output.
		lgwin := min(max(bits.Len64(uint64(size-1)), brotliMinLGWin), brotliMaxLGWin)
		return brotli.NewWriterOptions(w, brotli.WriterOptions{Quality: q, LGWin: lgwin}), nil
	case EncodingZstd:
		enc, err := getZstd(ctx)
		if err != nil {
			return nil, err
		}
		// With the content size known, the frame header declares a
		// window no bigger than the blob.
		enc.ResetContentSize(w, size)
		return pooledZstd{enc}, nil
	case EncodingGzip:
		gw := gzipPool.Get().(*gzip.Writer)
		gw.Reset(w)
		return pooledGzip{gw}, nil
	}
	return nil, fmt.Errorf("unknown encoding %q", encoding)
}

// A zstd encoder allocates megabytes of match tables (~34 MiB at the best
// level, less at zstdLevel), which took most of the time of a small Put when
// made per blob and is too big for a sync.Pool (emptied by every other GC).
// So the process keeps at most zstdEncoders of them, created on first use
// and reused forever after. zstd at zstdLevel is several times faster than
// brotli at its level, so two are not a bottleneck. gzip's ~1 MiB writers
// are pooled the ordinary way.
const zstdEncoders = 2

// zstdSlots holds zstdEncoders entries: idle encoders, or nil for one not
// created yet.
var zstdSlots = func() chan *zstd.Encoder {
	c := make(chan *zstd.Encoder, zstdEncoders)
	for range zstdEncoders {
		c <- nil
	}
	return c
}()

var gzipPool = sync.Pool{New: func() any {
	gw, err := gzip.NewWriterLevel(nil, gzipLevel)
	if err != nil {
		panic(err) // only a bad level fails, and this one is constant
	}
	return gw
}}

// getZstd waits for a zstd encoder; put it back with pooledZstd.Close.
func getZstd(ctx context.Context) (*zstd.Encoder, error) {
	select {
	case enc := <-zstdSlots:
		if enc != nil {
			return enc, nil
		}
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstdLevel),
			zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(zstdMaxWindow))
		if err != nil {
			zstdSlots <- nil
			return nil, err
		}
		return enc, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pooledZstd struct{ *zstd.Encoder }

func (p pooledZstd) Close() error {
	err := p.Encoder.Close()
	p.Encoder.Reset(nil)
	zstdSlots <- p.Encoder
	return err
}

type pooledGzip struct{ *gzip.Writer }

func (p pooledGzip) Close() error {
	err := p.Writer.Close()
	p.Writer.Reset(io.Discard)
	gzipPool.Put(p.Writer)
	return err
}

// newDecompressor returns a reader of the identity bytes of a variant.
func newDecompressor(encoding string, r io.Reader) (io.ReadCloser, error) {
	switch encoding {
	case EncodingBrotli:
		return io.NopCloser(brotli.NewReader(r)), nil
	case EncodingZstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case EncodingGzip:
		return gzip.NewReader(r)
	}
	return nil, fmt.Errorf("unknown encoding %q", encoding)
}

// worthCompressing compresses a sample of a blob (all of it up to two
// probeChunks, else a chunk at the start and one in the middle) with fast
// zstd, which costs a small fraction of the three best-compression passes.
func worthCompressing(src io.ReaderAt, size int64) (bool, error) {
	var sample []byte
	if size <= 2*probeChunk {
		sample = make([]byte, size)
		if _, err := src.ReadAt(sample, 0); err != nil && !errors.Is(err, io.EOF) {
			return false, err
		}
	} else {
		sample = make([]byte, 2*probeChunk)
		if _, err := src.ReadAt(sample[:probeChunk], 0); err != nil {
			return false, err
		}
		if _, err := src.ReadAt(sample[probeChunk:], size/2); err != nil && !errors.Is(err, io.EOF) {
			return false, err
		}
	}
	out := probeEncoder().EncodeAll(sample, make([]byte, 0, len(sample)))
	return len(out) < len(sample)-len(sample)/probeSavingsDivisor, nil
}

// alreadyCompressed reports whether head, the first bytes of a blob, says its
// format is compressed already, so that compressing it again would waste CPU
// for nothing. PDF, SVG, BMP, icons, WAV, fonts other than WOFF/WOFF2 and
// anything unknown are tried.
func alreadyCompressed(head []byte) bool {
	switch ct := http.DetectContentType(head); {
	case ct == "image/png", ct == "image/jpeg", ct == "image/gif", ct == "image/webp",
		ct == "application/zip", ct == "application/x-gzip", ct == "application/x-rar-compressed",
		ct == "font/woff", ct == "font/woff2", ct == "application/ogg":
		return true
	case strings.HasPrefix(ct, "video/"):
		return true
	case strings.HasPrefix(ct, "audio/"):
		// WAV and AIFF usually hold uncompressed PCM.
		return ct != "audio/wave" && ct != "audio/aiff"
	}
	for _, m := range compressedMagic {
		if len(head) >= m.offset+len(m.magic) && bytes.Equal(head[m.offset:m.offset+len(m.magic)], m.magic) {
			return true
		}
	}
	return false
}

// compressedMagic lists compressed formats http.DetectContentType does not
// know.
var compressedMagic = []struct {
	offset int
	magic  []byte
}{
	{0, []byte{0x28, 0xb5, 0x2f, 0xfd}},                  // zstd
	{0, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},          // xz
	{0, []byte{'7', 'z', 0xbc, 0xaf, 0x27, 0x1c}},        // 7-Zip
	{0, []byte("BZh")},                                   // bzip2
	{0, []byte{0x04, 0x22, 0x4d, 0x18}},                  // lz4 frame
	{0, []byte("fLaC")},                                  // FLAC
	{0, []byte{0xff, 0x0a}},                              // JPEG XL codestream
	{0, []byte{0, 0, 0, 0x0c, 'J', 'X', 'L', ' ', 0x0d}}, // JPEG XL container
	{4, []byte("ftyp")},                                  // ISO BMFF: AVIF, HEIC, MP4, MOV, M4A
	{0, []byte{0x1f, 0x9d}},                              // compress (.Z)
	{0, []byte{'P', 'K', 0x05, 0x06}},                    // empty zip
}

// limitWriter fails with errNotSmaller once more than max bytes are written.
type limitWriter struct {
	w        io.Writer
	max      int64
	n        int64
	exceeded bool
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n+int64(len(p)) > l.max {
		l.exceeded = true
		return 0, errNotSmaller
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	return n, err
}
