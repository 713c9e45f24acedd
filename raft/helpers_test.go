package raft

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"

	hraft "github.com/hashicorp/raft"
)

// t0 is the fixed clock of the tests' commands.
var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// hashOf returns the hex SHA-256 of s.
func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// manifest returns n files /f/00000.html ... with distinct hashes.
func manifest(n int) []atoll.File {
	files := make([]atoll.File, n)
	for i := range files {
		p := fmt.Sprintf("/f/%05d.html", i)
		files[i] = atoll.File{Path: p, Hash: hashOf(p)}
	}
	return files
}

// manifest100k is manifest(100_000), built once: tests must not modify it.
var manifest100k = sync.OnceValue(func() []atoll.File { return manifest(100_000) })

// fsmHarness applies commands to an FSM directly, as raft would, with
// consecutive log indexes.
type fsmHarness struct {
	t     testing.TB
	f     *FSM
	index uint64
}

func newFSM(t *testing.T) *fsmHarness {
	t.Helper()
	f, err := OpenFSM(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &fsmHarness{t: t, f: f}
}

// logs encodes cmds as command log entries following the harness's index,
// without applying them.
func (h *fsmHarness) logs(cmds ...Command) []*hraft.Log {
	h.t.Helper()
	out := make([]*hraft.Log, len(cmds))
	for i, c := range cmds {
		b, err := Encode(c)
		if err != nil {
			h.t.Fatalf("encode %T: %v", c, err)
		}
		h.index++
		out[i] = &hraft.Log{Index: h.index, Term: 1, Type: hraft.LogCommand, Data: b}
	}
	return out
}

// apply applies one command in its own batch and returns the FSM's response.
func (h *fsmHarness) apply(c Command) error {
	h.t.Helper()
	resp := h.f.ApplyBatch(h.logs(c))
	if resp[0] == nil {
		return nil
	}
	return resp[0].(error)
}

// must applies commands and fails the test on any rejection.
func (h *fsmHarness) must(cmds ...Command) {
	h.t.Helper()
	for _, c := range cmds {
		if err := h.apply(c); err != nil {
			h.t.Fatalf("apply %T %+v: %v", c, c, err)
		}
	}
}

// readyDeploy creates deploy id of site with files, uploaded and ready.
func (h *fsmHarness) readyDeploy(site, id string, files []atoll.File) {
	h.t.Helper()
	h.must(CreateDeploy{ID: id, Site: site, Files: len(files), Created: t0})
	for _, b := range BatchFiles(id, files) {
		h.must(b)
	}
	h.must(MarkReady{Deploy: id, Bytes: int64(len(files))})
}

func (h *fsmHarness) deploy(id string) atoll.Deploy {
	h.t.Helper()
	d, err := h.f.Deploy(id)
	if err != nil {
		h.t.Fatalf("Deploy(%q): %v", id, err)
	}
	return d
}

func (h *fsmHarness) site(name string) atoll.Site {
	h.t.Helper()
	s, err := h.f.Site(name)
	if err != nil {
		h.t.Fatalf("Site(%q): %v", name, err)
	}
	return s
}

// appliedFSM opens an FSM in a temporary directory and applies, in one
// batch with consecutive indexes, the commands build adds; a rejected one
// fails the benchmark.
func appliedFSM(b *testing.B, build func(add func(Command))) *FSM {
	b.Helper()
	f, err := OpenFSM(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	var logs []*hraft.Log
	build(func(c Command) {
		data, err := Encode(c)
		if err != nil {
			b.Fatal(err)
		}
		logs = append(logs, &hraft.Log{Index: uint64(len(logs) + 1), Type: hraft.LogCommand, Data: data})
	})
	for i, r := range f.ApplyBatch(logs) {
		if r != nil {
			b.Fatalf("entry %d: %v", i, r)
		}
	}
	return f
}
