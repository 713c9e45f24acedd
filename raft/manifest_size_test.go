package raft

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/atoll-hosting/atoll"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkManifestBytes builds deploys of 100 entries the way the
// platform-scale bench does (one site each, random-looking deploy ids,
// paths /p/000.html..., hashes from a pool of 3,000 blobs) and reports
// per manifest entry: of fsm.db (bbolt grows the file in steps), of the
// state (its pages up to the highest in use) and of the pages the
// manifest tables take (bbolt's page counts), at each layout.
//
//	go test -run '^$' -bench ManifestBytes -benchtime 1x ./raft/
func BenchmarkManifestBytes(b *testing.B) {
	const deploys, files, blobs = 1000, 100, 3000
	pool := make([]string, blobs)
	for i := range pool {
		pool[i] = hashOf(fmt.Sprint("blob", i))
	}
	for _, level := range []int{atoll.LevelDeployBase, atoll.MaxFeatureLevel} {
		b.Run(fmt.Sprintf("level%d", level), func(b *testing.B) {
			for b.Loop() {
				h := &fsmHarness{t: b}
				dir := b.TempDir()
				f, err := OpenFSM(dir)
				if err != nil {
					b.Fatal(err)
				}
				h.f = f
				setLevel(b, f, level)
				for i := range deploys {
					site := fmt.Sprintf("s%06d", i)
					man := make([]atoll.File, files)
					for j := range man {
						man[j] = atoll.File{Path: fmt.Sprintf("/p/%03d.html", j), Hash: pool[(i*7919+j*31)%blobs]}
					}
					id := fmt.Sprintf("%x", (uint64(i)*0x9e3779b97f4a7c15)>>8)
					cmds := []Command{CreateSite{Name: site, Created: t0}, CreateDeploy{ID: id, Site: site, Files: files, Created: t0}}
					for _, bt := range BatchFiles(id, man) {
						cmds = append(cmds, bt)
					}
					cmds = append(cmds, MarkReady{Deploy: id, Bytes: 1}, Publish{Deploy: id, At: t0})
					for _, r := range f.ApplyBatch(h.logs(cmds...)) {
						if r != nil {
							b.Fatal(r)
						}
					}
				}
				var pages, manPages int
				f.mu.RLock()
				if err := f.db.View(func(tx *bolt.Tx) error {
					for _, name := range [][]byte{bucketManifests, bucketManifestValues, bucketBlobIDs, bucketBlobHashes} {
						if bk := tx.Bucket(name); bk != nil {
							s := bk.Stats()
							manPages += s.BranchPageN + s.BranchOverflowN + s.LeafPageN + s.LeafOverflowN
						}
					}
					pages = int(tx.Size()) / f.db.Info().PageSize
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				f.mu.RUnlock()
				f.Close()
				st, err := os.Stat(filepath.Join(dir, fsmFile))
				if err != nil {
					b.Fatal(err)
				}
				entries := float64(deploys * files)
				b.ReportMetric(float64(st.Size())/entries, "file-B/entry")
				b.ReportMetric(float64(manPages*os.Getpagesize())/entries, "manifest-B/entry")
				b.ReportMetric(float64(pages*os.Getpagesize())/entries, "state-B/entry")
			}
		})
	}
}
