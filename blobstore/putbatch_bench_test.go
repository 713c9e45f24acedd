package blobstore

import (
	"fmt"
	"testing"
)

// BenchmarkPutBatch stores batches of 256 fresh 15 KiB blobs, with an fsync
// per file and folder, or with syncfs.
func BenchmarkPutBatch(b *testing.B) {
	for _, fs := range []bool{false, true} {
		b.Run(fmt.Sprintf("syncfs=%v", fs), func(b *testing.B) {
			batchSyncFS = fs
			defer func() { batchSyncFS = false }()
			s, err := New(Config{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			seed := uint64(0)
			b.SetBytes(256 * 15 << 10)
			for b.Loop() {
				var hashes []string
				var blobs [][]byte
				for range 256 {
					seed++
					blob := randomBlob(15<<10, seed)
					blobs, hashes = append(blobs, blob), append(hashes, hashOf(blob))
				}
				if _, err := s.PutBatch(b.Context(), batchOf(hashes, blobs)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
