package raft

import (
	"fmt"
	"testing"

	hraft "github.com/hashicorp/raft"

	"github.com/atoll-hosting/atoll"
)

// BenchmarkWholeStateReads times, on 20,000 sites of one published deploy
// each, the reads a node made on a timer or per call before the FSM kept
// its counts (a read of every site, then one per site) against what they
// read now: GET /v1/status's site count (Sites vs SiteCount), the metrics'
// deploys by state and the leader's expiry loop (Deploys per site vs
// DeployCounts and ExpiryCandidates), and the metrics' certificates (Certs
// per site vs CertExpiries). Per-op time is one whole read.
//
//	go test -run '^$' -bench WholeStateReads -benchtime 5x ./raft/
func BenchmarkWholeStateReads(b *testing.B) {
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
	const sites = 20_000
	for i := range sites {
		site, id := fmt.Sprintf("s%05d", i), fmt.Sprintf("d%05d", i)
		add(CreateSite{Name: site, Created: t0})
		add(CreateDeploy{ID: id, Site: site, Files: 1, Created: t0})
		add(AddFiles{Deploy: id, Files: []atoll.File{{Path: "/index.html", Hash: hashOf(site)}}})
		add(MarkReady{Deploy: id})
		add(Publish{Deploy: id, At: t0})
	}
	for i, r := range f.ApplyBatch(logs) {
		if r != nil {
			b.Fatalf("entry %d: %v", i, r)
		}
	}
	each := func(b *testing.B, fn func(site string) error) {
		all, err := f.Sites()
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range all {
			if err := fn(s.Name); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("status-sites/per-site", func(b *testing.B) {
		for b.Loop() {
			if all, err := f.Sites(); err != nil || len(all) != sites {
				b.Fatal(len(all), err)
			}
		}
	})
	b.Run("status-sites/count", func(b *testing.B) {
		for b.Loop() {
			if f.SiteCount() != sites {
				b.Fatal(f.SiteCount())
			}
		}
	})
	b.Run("deploys/per-site", func(b *testing.B) {
		for b.Loop() {
			each(b, func(s string) error { _, err := f.Deploys(s); return err })
		}
	})
	b.Run("deploys/counts", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.DeployCounts(); err != nil {
				b.Fatal(err)
			}
			f.ExpiryCandidates()
		}
	})
	b.Run("certs/per-site", func(b *testing.B) {
		for b.Loop() {
			each(b, func(s string) error { _, err := f.Certs(s); return err })
		}
	})
	b.Run("certs/table", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.CertExpiries(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
