package raft

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/atoll-hosting/atoll"

	hraft "github.com/hashicorp/raft"
)

// BenchmarkFileRandom looks up uniformly random paths of one deploy with n
// manifest entries, and paths it does not have (misses): the edge's lookup
// when its route cache does not hold the path.
//
//	go test -run '^$' -bench FileRandom -benchmem ./raft/
//
// The "compact/" rows are a deploy of compactMaxFiles entries at
// atoll.LevelCompactManifests: a compact manifest.
func BenchmarkFileRandom(b *testing.B) {
	for _, c := range []struct {
		n     int
		level int
		name  string
	}{{compactMaxFiles, atoll.LevelDeployBase, ""}, {compactMaxFiles, atoll.LevelCompactManifests, "compact/"}, {1_000, atoll.LevelDeployBase, ""}, {200_000, atoll.LevelDeployBase, ""}} {
		n := c.n
		f, err := OpenFSM(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		setLevel(b, f, c.level)
		files := manifest(n)
		var logs []*hraft.Log
		add := func(c Command) {
			data, err := Encode(c)
			if err != nil {
				b.Fatal(err)
			}
			logs = append(logs, &hraft.Log{Index: uint64(len(logs) + 1), Type: hraft.LogCommand, Data: data})
		}
		add(CreateSite{Name: "blog"})
		add(CreateDeploy{ID: "d1", Site: "blog", Files: len(files)})
		for _, bt := range BatchFiles("d1", files) {
			add(bt)
		}
		for _, r := range f.ApplyBatch(logs) {
			if r != nil {
				b.Fatal(r)
			}
		}
		b.Run(fmt.Sprintf("%shit/%d", c.name, n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			for b.Loop() {
				want := files[rng.IntN(n)]
				if got, err := f.File("d1", want.Path); err != nil || got != want.Hash {
					b.Fatalf("File(%s) = %q, %v", want.Path, got, err)
				}
			}
		})
		b.Run(fmt.Sprintf("%smiss/%d", c.name, n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			for b.Loop() {
				p := files[rng.IntN(n)].Path + "/index.html"
				if _, err := f.File("d1", p); err == nil {
					b.Fatalf("File(%s) found", p)
				}
			}
		})
		f.Close()
	}
}

// TestFileLargeDeploy: on a deploy of 100k entries every path answers its
// own hash, and paths next to them (a prefix, an extension, a directory
// index, another deploy's id) stay misses that wrap ErrNotFound.
func TestFileLargeDeploy(t *testing.T) {
	h := newFSM(t)
	files := manifest100k()
	h.must(CreateSite{Name: "blog"})
	h.readyDeploy("blog", "big", files)
	h.readyDeploy("blog", "small", files[:10])
	for _, want := range files {
		got, err := h.f.File("big", want.Path)
		if err != nil || got != want.Hash {
			t.Fatalf("File(big, %s) = %q, %v; want %q", want.Path, got, err, want.Hash)
		}
	}
	for i, p := range []string{"/f/0000", "/f/00001.htm", "/f/00001.html/index.html", "/f", "/g/00001.html", "/f/99999.htmm"} {
		if got, err := h.f.File("big", p); !errors.Is(err, atoll.ErrNotFound) {
			t.Errorf("miss %d: File(big, %s) = %q, %v; want ErrNotFound", i, p, got, err)
		}
	}
	if got, err := h.f.File("small", files[10].Path); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("File(small, %s) = %q, %v; want ErrNotFound: the path is another deploy's", files[10].Path, got, err)
	}
	if got, err := h.f.File("nope", files[0].Path); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("File(nope, ...) = %q, %v; want ErrNotFound", got, err)
	}
}
