package atoll

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// readBatch reads every record of body, returning hash:content pairs.
func readBatch(body string, maxBlobs int, maxSize int64) ([]string, error) {
	br := NewBlobBatchReader(strings.NewReader(body), maxBlobs, maxSize)
	var got []string
	for {
		h, size, r, err := br.Next()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return got, err
		}
		if int64(len(b)) != size {
			return got, errors.New("body length differs from size")
		}
		got = append(got, h[:4]+":"+string(b))
	}
}

func TestBlobBatchRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	blobs := []string{"hello", "", "a\nb\n" + strings.Repeat("x", 70000)}
	for _, b := range blobs {
		if err := WriteBlobRecord(&buf, sum(b), int64(len(b)), strings.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readBatch(buf.String(), 3, 1<<20)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	for i, b := range blobs {
		if want := sum(b)[:4] + ":" + b; got[i] != want {
			t.Errorf("record %d = %.20q, want %.20q", i, got[i], want)
		}
	}
	if err := WriteBlobRecord(io.Discard, sum("abc"), 5, strings.NewReader("abc")); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("WriteBlobRecord of a short reader: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestBlobBatchReaderRefuses(t *testing.T) {
	h := sum("hi")
	tests := []struct {
		name string
		body string
		max  int
		size int64
		want error
	}{
		{"empty batch", "", 0, 0, nil},
		{"body shorter than its size", h + " 5\nhi", 0, 0, ErrBatchMalformed},
		{"record read only in part, then the end", h + " 2\nhi" + h + " 9\nabc", 0, 0, ErrBatchMalformed},
		{"no newline", h + " 2", 0, 0, ErrBatchMalformed},
		{"not a hash", "zz 2\nhi", 0, 0, ErrBatchMalformed},
		{"uppercase hash", strings.ToUpper(h) + " 2\nhi", 0, 0, ErrBatchMalformed},
		{"negative size", h + " -2\nhi", 0, 0, ErrBatchMalformed},
		{"plus sign", h + " +2\nhi", 0, 0, ErrBatchMalformed},
		{"long header line", h + " 2" + strings.Repeat(" ", 200) + "\nhi", 0, 0, ErrBatchMalformed},
		{"too many blobs", h + " 2\nhi" + h + " 2\nhi", 1, 0, ErrBatchTooMany},
		{"blob over the limit", h + " 2\nhi", 0, 1, ErrBatchBlobTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readBatch(tt.body, tt.max, tt.size)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzBlobBatchReader: any body is read to its end or refused with an
// error, never a panic, and a record's bytes are never more than its size.
func FuzzBlobBatchReader(f *testing.F) {
	h := sum("hi")
	f.Add(h + " 2\nhi")
	f.Add(h + " 2\nhi" + h + " 0\n")
	f.Add(h + " 99999999999999999999\n")
	f.Add("\n\n")
	f.Fuzz(func(t *testing.T, body string) {
		br := NewBlobBatchReader(strings.NewReader(body), 8, 1<<16)
		for range 10 {
			_, size, r, err := br.Next()
			if err != nil {
				return
			}
			n, _ := io.Copy(io.Discard, r)
			if n > size {
				t.Fatalf("read %d bytes of a %d-byte record", n, size)
			}
		}
	})
}
