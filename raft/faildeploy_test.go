package raft

import (
	"errors"
	"fmt"
	"testing"

	"github.com/atoll-hosting/atoll"

	bolt "go.etcd.io/bbolt"
)

// fileCount is how many entries deploy id's manifest holds.
func (h *fsmHarness) fileCount(id string) int {
	h.t.Helper()
	n := 0
	if err := h.f.Files(id, func(atoll.File) error { n++; return nil }); err != nil {
		h.t.Fatalf("Files(%q): %v", id, err)
	}
	return n
}

// TestFailDeployDropFiles: below LevelFeatureLevels DropFiles means nothing
// (what an older node does with the field); from it on, failing a deploy
// empties its manifest in the same command, also for a deploy failed
// before, and the record stays failed with its reason.
func TestFailDeployDropFiles(t *testing.T) {
	h := newFSM(t)
	h.must(CreateSite{Name: "blog", Created: t0})
	h.must(CreateDeploy{ID: "old", Site: "blog", Files: 3, Created: t0}, AddFiles{Deploy: "old", Files: manifest(2)})
	h.must(FailDeploy{Deploy: "old", Reason: "gave up", DropFiles: true})
	if d := h.deploy("old"); d.State != atoll.StateFailed || d.Received != 2 || h.fileCount("old") != 2 {
		t.Fatalf("at level %d: %+v with %d files, want failed and the manifest kept", atoll.LevelBase, d, h.fileCount("old"))
	}
	if got := FailDeployCmd(atoll.LevelBase, "x", "r"); got.DropFiles {
		t.Errorf("FailDeployCmd at level %d sets DropFiles", atoll.LevelBase)
	}

	h.must(SetFeatureLevel{Level: atoll.LevelFeatureLevels})
	h.must(FailDeployCmd(h.f.FeatureLevel(), "old", "ignored: it failed before"))
	if d := h.deploy("old"); d.State != atoll.StateFailed || d.Reason != "gave up" || d.Received != 0 || h.fileCount("old") != 0 {
		t.Errorf("failed deploy after DropFiles: %+v with %d files, want failed, its reason kept, no files", d, h.fileCount("old"))
	}

	h.must(CreateDeploy{ID: "new", Site: "blog", Files: 5, Created: t0}, AddFiles{Deploy: "new", Files: manifest(4)})
	h.must(FailDeployCmd(h.f.FeatureLevel(), "new", "expired"))
	if d := h.deploy("new"); d.State != atoll.StateFailed || d.Reason != "expired" || d.Received != 0 || h.fileCount("new") != 0 {
		t.Errorf("uploading deploy after FailDeploy with DropFiles: %+v with %d files", d, h.fileCount("new"))
	}
	if _, err := h.f.File("new", "/f/00000.html"); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("File of a dropped manifest: %v, want ErrNotFound", err)
	}
	before := dump(t, h.f)
	h.must(FailDeployCmd(h.f.FeatureLevel(), "new", "again")) // a resend
	if got := dump(t, h.f); got != before {
		t.Errorf("a resent FailDeploy changed the state:\n%s\nwant\n%s", got, before)
	}

	h.must(CreateDeploy{ID: "kept", Site: "blog", Files: 2, Created: t0}, AddFiles{Deploy: "kept", Files: manifest(1)})
	h.must(FailDeploy{Deploy: "kept", Reason: "no drop"})
	if h.fileCount("kept") != 1 {
		t.Errorf("FailDeploy without DropFiles at level %d emptied the manifest", atoll.LevelFeatureLevels)
	}
	h.readyDeploy("blog", "rdy", manifest(2))
	if err := h.apply(FailDeployCmd(h.f.FeatureLevel(), "rdy", "no")); !errors.Is(err, atoll.ErrConflict) || h.fileCount("rdy") != 2 {
		t.Errorf("FailDeploy with DropFiles of a ready deploy: %v, %d files; want ErrConflict and the files kept", err, h.fileCount("rdy"))
	}
}

// stateBytes is the size of the FSM's state: what a snapshot copies.
func stateBytes(t *testing.T, f *FSM) int64 {
	var n int64
	if err := f.view(func(tx *bolt.Tx) error { n = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAbandonedManifestsGiveRoomBack: at LevelFeatureLevels the state does
// not grow with abandoned 10k-entry manifests failed one after the other
// (their pages are reused); below it each one stays (until a publish
// prunes it).
func TestAbandonedManifestsGiveRoomBack(t *testing.T) {
	const rounds, entries = 5, 10_000
	grow := func(level int) (first, last int64) {
		h := newFSM(t)
		h.must(SetFeatureLevel{Level: level}, CreateSite{Name: "blog", Created: t0})
		for i := range rounds {
			id := fmt.Sprintf("abandoned%d", i)
			files := make([]atoll.File, entries)
			for j := range files {
				p := fmt.Sprintf("/r%d/%05d.html", i, j)
				files[j] = atoll.File{Path: p, Hash: hashOf(p)}
			}
			h.must(CreateDeploy{ID: id, Site: "blog", Files: entries + 1, Created: t0})
			for _, b := range BatchFiles(id, files) {
				h.must(b)
			}
			h.must(FailDeployCmd(h.f.FeatureLevel(), id, "expired"))
			if i == 0 {
				first = stateBytes(t, h.f)
			}
		}
		return first, stateBytes(t, h.f)
	}
	first, last := grow(atoll.LevelFeatureLevels)
	t.Logf("level %d: state %d bytes after the first abandoned manifest, %d after %d", atoll.LevelFeatureLevels, first, last, rounds)
	if last > first+first/4 {
		t.Errorf("at level %d the state grew from %d to %d bytes over %d abandoned manifests, want it to stay put", atoll.LevelFeatureLevels, first, last, rounds)
	}
	first, last = grow(atoll.LevelBase)
	t.Logf("level %d: state %d bytes after the first abandoned manifest, %d after %d", atoll.LevelBase, first, last, rounds)
	if last < 3*first {
		t.Errorf("at level %d the state grew only from %d to %d bytes: the control does not show the growth", atoll.LevelBase, first, last)
	}
}
