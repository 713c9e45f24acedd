package client

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"
	"testing"
)

// chunkRecorder records the size of every write.
type chunkRecorder struct {
	bytes.Buffer
	writes []int
}

func (r *chunkRecorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, len(p))
	return r.Buffer.Write(p)
}

// A batch body sends the same bytes through WriteTo (net/http's HTTP/1.1
// transport) and through Read (any other reader), the former in writes of
// batchChunk bytes, and a WriteTo after a Read goes on from where the
// reader stopped.
func TestBatchBody(t *testing.T) {
	var blobs []BatchBlob
	for i := range 300 {
		content := strings.Repeat(string(rune('a'+i%26)), 1000+i*30)
		sum := sha256.Sum256([]byte(content))
		blobs = append(blobs, BatchBlob{Hash: hex.EncodeToString(sum[:]), Size: int64(len(content)),
			Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }})
	}
	var want bytes.Buffer
	if err := writeBatch(&want, blobs); err != nil {
		t.Fatal(err)
	}

	var rec chunkRecorder
	n, err := (&batchBody{blobs: blobs}).WriteTo(&rec)
	if err != nil || n != int64(want.Len()) || !bytes.Equal(rec.Bytes(), want.Bytes()) {
		t.Fatalf("WriteTo: %d bytes (%v), equal %v; want %d", n, err, bytes.Equal(rec.Bytes(), want.Bytes()), want.Len())
	}
	for i, w := range rec.writes[:len(rec.writes)-1] {
		if w != batchChunk {
			t.Errorf("write %d of %d is %d bytes, want %d (every one but the last)", i+1, len(rec.writes), w, batchChunk)
		}
	}

	b := &batchBody{blobs: blobs}
	got, err := io.ReadAll(io.LimitReader(b, 12345))
	if err != nil {
		t.Fatal(err)
	}
	var rest bytes.Buffer
	if _, err := b.WriteTo(&rest); err != nil {
		t.Fatal(err)
	}
	if got = append(got, rest.Bytes()...); !bytes.Equal(got, want.Bytes()) {
		t.Errorf("Read then WriteTo: %d bytes, not the batch's %d", len(got), want.Len())
	}
	if err := b.Close(); err != nil {
		t.Error(err)
	}
}
