package atoll

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The blob batch format: the body of POST /v1/blobs (a client's upload of
// many blobs in one request) and of the peer call that pushes a batch to
// another owner. It is a sequence of records, each a header line then the
// blob's bytes, until the end of the body:
//
//	<hash> <size>\n<size bytes>
//
// hash is the blob's SHA-256 in lowercase hex (64 characters), size its
// length in decimal. Nothing separates a record's bytes from the next
// header. An empty body is a batch of no blobs.
const BlobBatchContentType = "application/vnd.atoll.blobs"

// Errors of the blob batch format.
var (
	// ErrBatchMalformed: a header line that is not "<hash> <size>", or a
	// body that ends inside a record.
	ErrBatchMalformed = errors.New("malformed blob batch")
	// ErrBatchTooMany: more records than the reader's limit.
	ErrBatchTooMany = errors.New("too many blobs in one batch")
	// ErrBatchBlobTooLarge: a record's size over the reader's limit.
	ErrBatchBlobTooLarge = errors.New("blob larger than the limit")
)

// maxBatchHeader bounds a header line: 64 hex digits, a space, 19 digits,
// a newline.
const maxBatchHeader = 64 + 1 + 19 + 1

// WriteBlobRecord writes one record of a blob batch: its header, then size
// bytes read from r (an r that ends early fails with io.ErrUnexpectedEOF).
func WriteBlobRecord(w io.Writer, hash string, size int64, r io.Reader) error {
	if _, err := fmt.Fprintf(w, "%s %d\n", hash, size); err != nil {
		return err
	}
	n, err := io.CopyN(w, r, size)
	if err == io.EOF && n < size {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// BlobBatchReader reads the records of a blob batch one at a time. Each
// record's body must be read (or left: Next skips what is unread) before
// the next call to Next.
type BlobBatchReader struct {
	r        *bufio.Reader
	maxBlobs int
	maxSize  int64
	count    int
	cur      *io.LimitedReader
	curSize  int64
	curHash  string
}

// NewBlobBatchReader returns a reader of the batch in r that refuses more
// than maxBlobs records (ErrBatchTooMany) and records over maxSize bytes
// (ErrBatchBlobTooLarge); 0 means no limit.
func NewBlobBatchReader(r io.Reader, maxBlobs int, maxSize int64) *BlobBatchReader {
	return &BlobBatchReader{r: bufio.NewReaderSize(r, 64<<10), maxBlobs: maxBlobs, maxSize: maxSize}
}

// Next returns the next record's hash, size and body, or io.EOF after the
// last. The body returns io.ErrUnexpectedEOF, wrapped in
// ErrBatchMalformed, when the batch ends inside it. The hash is checked
// for its form only; whether the bytes match it is the caller's check.
func (b *BlobBatchReader) Next() (hash string, size int64, body io.Reader, err error) {
	if b.cur != nil {
		if _, err := io.Copy(io.Discard, b.cur); err != nil {
			return "", 0, nil, err
		}
		if b.cur.N > 0 {
			return "", 0, nil, b.short()
		}
		b.cur = nil
	}
	line, err := b.r.ReadSlice('\n')
	if err == io.EOF && len(line) == 0 {
		return "", 0, nil, io.EOF
	}
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) || err == io.EOF {
			return "", 0, nil, fmt.Errorf("%w: record %d: header line %.80q is not \"<sha256> <size>\"", ErrBatchMalformed, b.count+1, line)
		}
		return "", 0, nil, err
	}
	if len(line) > maxBatchHeader {
		return "", 0, nil, fmt.Errorf("%w: record %d: header line longer than %d bytes", ErrBatchMalformed, b.count+1, maxBatchHeader)
	}
	h, sz, ok := strings.Cut(strings.TrimSuffix(string(line), "\n"), " ")
	size, perr := strconv.ParseInt(sz, 10, 64)
	if !ok || !ValidHash(h) || perr != nil || size < 0 || strings.HasPrefix(sz, "+") {
		return "", 0, nil, fmt.Errorf("%w: record %d: header line %.80q is not \"<sha256> <size>\"", ErrBatchMalformed, b.count+1, line)
	}
	b.count++
	if b.maxBlobs > 0 && b.count > b.maxBlobs {
		return "", 0, nil, fmt.Errorf("%w: more than %d", ErrBatchTooMany, b.maxBlobs)
	}
	if b.maxSize > 0 && size > b.maxSize {
		return "", 0, nil, fmt.Errorf("%w: blob %s of %d bytes, limit %d", ErrBatchBlobTooLarge, h, size, b.maxSize)
	}
	b.cur = &io.LimitedReader{R: b.r, N: size}
	b.curHash, b.curSize = h, size
	return h, size, batchBody{b}, nil
}

func (b *BlobBatchReader) short() error {
	return fmt.Errorf("%w: blob %s: the batch ends %d bytes before its end: %w", ErrBatchMalformed, b.curHash, b.cur.N, io.ErrUnexpectedEOF)
}

// batchBody reads the current record, failing when the batch ends early.
type batchBody struct{ b *BlobBatchReader }

func (r batchBody) Read(p []byte) (int, error) {
	cur := r.b.cur
	if cur == nil || cur.N == 0 {
		return 0, io.EOF
	}
	n, err := cur.Read(p)
	if err == io.EOF && cur.N > 0 {
		return n, r.b.short()
	}
	return n, err
}

// BlobBatchResponse is the body of a successful POST /v1/blobs: every blob
// of the batch, in the order sent, each stored on a majority of its
// owners.
type BlobBatchResponse struct {
	Blobs []BlobResponse `json:"blobs"`
}
