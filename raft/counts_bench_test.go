package raft

import (
	"fmt"
	"testing"

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
	const sites = 20_000
	f := appliedFSM(b, func(add func(Command)) {
		for i := range sites {
			site, id := fmt.Sprintf("s%05d", i), fmt.Sprintf("d%05d", i)
			add(CreateSite{Name: site, Created: t0})
			add(CreateDeploy{ID: id, Site: site, Files: 1, Created: t0})
			add(AddFiles{Deploy: id, Files: []atoll.File{{Path: "/index.html", Hash: hashOf(site)}}})
			add(MarkReady{Deploy: id})
			add(Publish{Deploy: id, At: t0})
		}
	})
	perSite := func(read func(site string) error) func() error {
		return func() error {
			all, err := f.Sites()
			for _, s := range all {
				if err == nil {
					err = read(s.Name)
				}
			}
			return err
		}
	}
	for _, c := range []struct {
		name string
		read func() error
	}{
		{"status-sites/per-site", func() error { _, err := f.Sites(); return err }},
		{"status-sites/count", func() error { f.SiteCount(); return nil }},
		{"deploys/per-site", perSite(func(s string) error { _, err := f.Deploys(s); return err })},
		{"deploys/counts", func() error { f.ExpiryCandidates(); _, err := f.DeployCounts(); return err }},
		{"certs/per-site", perSite(func(s string) error { _, err := f.Certs(s); return err })},
		{"certs/table", func() error { _, err := f.CertExpiries(); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := c.read(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	if f.SiteCount() != sites {
		b.Fatalf("SiteCount %d, want %d", f.SiteCount(), sites)
	}
}
