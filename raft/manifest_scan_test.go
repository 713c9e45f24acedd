package raft

import (
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/atoll-hosting/atoll"
)

// TestScanManifest checks that ScanManifest hands out exactly what Files
// lists, in the same order, across the boundaries of its read transactions.
func TestScanManifest(t *testing.T) {
	h := newFSM(t)
	h.must(CreateSite{Name: "blog"})
	for _, n := range []int{1, scanChunk, scanChunk + 1, 2*scanChunk + 7} {
		id := fmt.Sprintf("d%d", n)
		h.readyDeploy("blog", id, manifest(n))
		t.Run(id, func(t *testing.T) {
			var want []atoll.File
			if err := h.f.Files(id, func(f atoll.File) error { want = append(want, f); return nil }); err != nil {
				t.Fatal(err)
			}
			var got []atoll.File
			err := h.f.ScanManifest(id, func(path, sum []byte) error {
				got = append(got, atoll.File{Path: string(path), Hash: hex.EncodeToString(sum)})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) || len(got) != n {
				t.Fatalf("got %d entries, Files lists %d, want %d", len(got), len(want), n)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("entry %d: got %+v, want %+v", i, got[i], want[i])
				}
			}
		})
	}
	t.Run("unknown deploy", func(t *testing.T) {
		err := h.f.ScanManifest("nope", func(path, sum []byte) error { return nil })
		if !errors.Is(err, atoll.ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
	})
	t.Run("fn error stops the scan", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := h.f.ScanManifest("d1", func(path, sum []byte) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("got %v after %d calls, want stop after 1", err, calls)
		}
	})
}
