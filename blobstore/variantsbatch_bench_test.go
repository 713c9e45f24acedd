//go:build linux

package blobstore

import (
	"bytes"
	"io"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkAcceptVariants takes the variants of 256 text blobs of 4-30 KiB
// made elsewhere into a store that waits for them: one AcceptVariants per
// blob, 4 at a time (the sender's slots below feature level 6), against
// one AcceptVariantsBatch. cpu-ms/op is the process's user+system CPU.
func BenchmarkAcceptVariants(b *testing.B) {
	maker, err := New(Config{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer maker.Close()
	var blobs [][]byte
	var recs []variantsRecord
	for i := range 256 {
		blob := textBlob(4<<10+(i*101)%(26<<10), uint64(1000+i))
		info, err := maker.Put(b.Context(), "", bytes.NewReader(blob))
		if err != nil {
			b.Fatal(err)
		}
		if err := maker.WaitCompressed(b.Context()); err != nil {
			b.Fatal(err)
		}
		h, body, _, err := maker.ExportVariants(info.Hash)
		if err != nil {
			b.Fatal(err)
		}
		v, _ := io.ReadAll(body)
		body.Close()
		blobs, recs = append(blobs, blob), append(recs, variantsRecord{info.Hash, h, v})
	}
	perBlob := func(s *Store) error {
		var wg sync.WaitGroup
		errs := make(chan error, len(recs))
		slots := make(chan struct{}, 4)
		for _, r := range recs {
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				if _, err := s.AcceptVariants(b.Context(), r.hash, r.header, bytes.NewReader(r.body)); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	}
	batch := func(s *Store) error {
		_, err := s.AcceptVariantsBatch(b.Context(), variantsOf(recs, nil))
		return err
	}
	for _, bc := range []struct {
		name   string
		accept func(*Store) error
	}{{"per-blob", perBlob}, {"batch", batch}} {
		b.Run(bc.name, func(b *testing.B) {
			var cpu time.Duration
			for range b.N {
				b.StopTimer()
				s, err := New(Config{Dir: b.TempDir(), Logger: slog.New(slog.DiscardHandler),
					VariantsWait: func(string) time.Duration { return time.Hour }})
				if err != nil {
					b.Fatal(err)
				}
				for _, blob := range blobs {
					if _, err := s.Put(b.Context(), "", bytes.NewReader(blob)); err != nil {
						b.Fatal(err)
					}
				}
				c0 := cpuTime()
				b.StartTimer()
				if err := bc.accept(s); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += cpuTime() - c0
				if got := s.CompressStats().Accepted; got != int64(len(recs)) {
					b.Fatalf("accepted %d, want %d", got, len(recs))
				}
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime returns the user+system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
