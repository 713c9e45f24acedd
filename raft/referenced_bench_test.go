package raft

import (
	"context"
	"fmt"
	"testing"

	hraft "github.com/hashicorp/raft"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/repair"
)

// BenchmarkReferenced lists the blobs referenced by 2,000 sites of 100
// files over 3,000 blobs (200k entries, the shape of bench/cmd/atoll-scale)
// the two ways repair can: through Sites, Deploys and Files (walk), and in
// one walk of the manifests with raw hashes (direct). Per-op time is one
// whole listing; the ratio is what the census and GC gain.
//
//	go test -run '^$' -bench Referenced -benchtime 5x ./raft/
func BenchmarkReferenced(b *testing.B) {
	f, err := OpenFSM(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	var logs []*hraft.Log
	add := func(c Command) {
		data, err := Encode(c)
		if err != nil {
			b.Fatal(err)
		}
		logs = append(logs, &hraft.Log{Index: uint64(len(logs) + 1), Type: hraft.LogCommand, Data: data})
	}
	for i := range 2000 {
		site, id := fmt.Sprintf("s%05d", i), fmt.Sprintf("d%05d", i)
		files := make([]atoll.File, 100)
		for j := range files {
			files[j] = atoll.File{Path: fmt.Sprintf("/p/%03d.html", j), Hash: hashOf(fmt.Sprint((i*7919 + j*104729) % 3000))}
		}
		add(CreateSite{Name: site})
		add(CreateDeploy{ID: id, Site: site, Files: len(files)})
		for _, bt := range BatchFiles(id, files) {
			add(bt)
		}
		add(MarkReady{Deploy: id})
		add(Publish{Deploy: id})
	}
	for i, r := range f.ApplyBatch(logs) {
		if r != nil {
			b.Fatalf("entry %d: %v", i, r)
		}
	}
	ctx := context.Background()
	b.Run("walk", func(b *testing.B) {
		for b.Loop() {
			if _, err := repair.WalkReferenced(ctx, fsmMeta{f}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.ReferencedBlobs(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
