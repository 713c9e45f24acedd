package raft

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"

	bolt "go.etcd.io/bbolt"
)

// setLevel writes a feature level into f's state directly, as a newer
// binary's SetFeatureLevel would have left it.
func setLevel(t testing.TB, f *FSM, level int) {
	t.Helper()
	f.mu.RLock()
	defer f.mu.RUnlock()
	if err := f.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyFeatureLevel, []byte(strconv.Itoa(level)))
	}); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return hashOf(string(b))
}

// wantNewer checks that err is a *NewerStateError for level (or for a
// snapshot format version, when version is not 0) and reads as one line
// saying what to do.
func wantNewer(t *testing.T, what string, err error, level, version int) {
	t.Helper()
	var ne *NewerStateError
	if !errors.As(err, &ne) || !errors.Is(err, atoll.ErrInvalid) {
		t.Fatalf("%s: %v, want a NewerStateError wrapping ErrInvalid", what, err)
	}
	msg := err.Error()
	want := []string{"run a newer atoll", fmt.Sprintf("feature level %d", level), fmt.Sprintf("levels up to %d", atoll.MaxFeatureLevel)}
	if version != 0 {
		want = []string{"run a newer atoll", fmt.Sprintf("format version %d", version), fmt.Sprintf("formats up to %d", snapshotVersion)}
	}
	for _, w := range want {
		if !strings.Contains(msg, w) || strings.Contains(msg, "\n") {
			t.Errorf("%s: %q, want one line with %q", what, msg, w)
		}
	}
}

// TestOpenRefusesNewerState: an FSM file at a feature level this binary
// does not know is refused by OpenFSM and by Store.Open, byte for byte
// untouched, and Store.Open creates nothing next to it.
func TestOpenRefusesNewerState(t *testing.T) {
	dir := t.TempDir()
	f, err := OpenFSM(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := &fsmHarness{t: t, f: f}
	h.must(CreateSite{Name: "blog", Created: t0})
	setLevel(t, f, atoll.MaxFeatureLevel+1)
	f.Close()
	path := filepath.Join(dir, fsmFile)
	before := fileSum(t, path)

	_, err = OpenFSM(dir)
	wantNewer(t, "OpenFSM", err, atoll.MaxFeatureLevel+1, 0)
	if !strings.Contains(err.Error(), path) {
		t.Errorf("OpenFSM: %q, want it to name %s", err, path)
	}
	cfg := testConfig(t, "n1", dir)
	cfg.Bootstrap = true
	if s, err := Open(cfg); err == nil {
		s.Close()
		t.Fatal("Store.Open of a newer state succeeded")
	} else {
		wantNewer(t, "Store.Open", err, atoll.MaxFeatureLevel+1, 0)
	}
	if after := fileSum(t, path); after != before {
		t.Error("the refused fsm.db changed")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("the data dir holds %v after the refused open, want fsm.db alone", ents)
	}
}

// newerBackups returns a backup of a state at a feature level above
// MaxFeatureLevel, and one whose snapshot format version is newer.
func newerBackups(t *testing.T) (level, version []byte) {
	src := newFSM(t)
	src.must(CreateSite{Name: "newer", Created: t0})
	setLevel(t, src.f, atoll.MaxFeatureLevel+1)
	level = backupOf(t, src.f)
	version = slices.Clone(level)
	version[len(snapshotMagic)] = snapshotVersion + 1
	return level, version
}

// TestRestoreRefusesNewerSnapshot: a raft snapshot (InstallSnapshot, or
// Open's catch-up) of a newer state is refused and the current state
// stays as it was, still applying.
func TestRestoreRefusesNewerSnapshot(t *testing.T) {
	level, version := newerBackups(t)
	h := newFSM(t)
	h.must(CreateSite{Name: "live", Created: t0})
	want, applied := dump(t, h.f), h.f.AppliedIndex()

	err := h.f.Restore(io.NopCloser(bytes.NewReader(level)))
	wantNewer(t, "Restore of a newer level", err, atoll.MaxFeatureLevel+1, 0)
	err = h.f.Restore(io.NopCloser(bytes.NewReader(version)))
	wantNewer(t, "Restore of a newer format", err, 0, snapshotVersion+1)
	_, err = VerifyBackup(bytes.NewReader(version)) // the CLI's check, before sending
	wantNewer(t, "VerifyBackup of a newer format", err, 0, snapshotVersion+1)

	if got := dump(t, h.f); got != want || h.f.AppliedIndex() != applied || h.f.StorageFailed() != nil {
		t.Fatalf("state after refused restores (index %d, failed %v):\n%s\nwant (index %d):\n%s",
			h.f.AppliedIndex(), h.f.StorageFailed(), got, applied, want)
	}
	if _, err := os.Stat(h.f.path + restoreSuffix); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("restore file left behind: %v", err)
	}
	h.must(CreateSite{Name: "after", Created: t0})
}

// TestRestoreBackupFeatureLevels: a backup from an older cluster restores
// and the cluster keeps its level; one from a cluster further on than this
// one is refused (409), one from a newer atoll too (400); neither changes
// anything.
func TestRestoreBackupFeatureLevels(t *testing.T) {
	s := singleNode(t, t.TempDir())
	mustApply(t, s, CreateSite{Name: "blog", Created: t0})
	atBase := backupOf(t, s.FSM)
	mustApply(t, s, SetFeatureLevel{Level: atoll.LevelFeatureLevels})
	atTwo := backupOf(t, s.FSM)
	mustApply(t, s, CreateSite{Name: "later", Created: t0})
	newer, _ := newerBackups(t)

	want := dump(t, s.FSM)
	_, err := s.RestoreBackup(ctxT(t, 30*time.Second), bytes.NewReader(newer))
	wantNewer(t, "RestoreBackup of a newer state", err, atoll.MaxFeatureLevel+1, 0)
	if got := dump(t, s.FSM); got != want {
		t.Fatalf("state after a refused restore:\n%s\nwant\n%s", got, want)
	}

	if _, err := s.RestoreBackup(ctxT(t, 30*time.Second), bytes.NewReader(atBase)); err != nil {
		t.Fatalf("RestoreBackup of a level-%d backup at level %d: %v", atoll.LevelBase, atoll.LevelFeatureLevels, err)
	}
	if got := s.FeatureLevel(); got != atoll.LevelFeatureLevels {
		t.Errorf("feature level after restoring an older backup = %d, want %d kept", got, atoll.LevelFeatureLevels)
	}
	if _, err := s.Site("later"); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("site made after the backup: %v, want it gone", err)
	}

	base := singleNode(t, t.TempDir())
	mustApply(t, base, CreateSite{Name: "other", Created: t0})
	want = dump(t, base.FSM)
	_, err = base.RestoreBackup(ctxT(t, 30*time.Second), bytes.NewReader(atTwo))
	var fe *atoll.FeatureError
	if !errors.As(err, &fe) || !errors.Is(err, atoll.ErrConflict) || fe.Need != atoll.LevelFeatureLevels || fe.Have != atoll.LevelBase {
		t.Fatalf("RestoreBackup of a level-%d backup at level %d: %v, want a FeatureError (409)", atoll.LevelFeatureLevels, atoll.LevelBase, err)
	}
	if got := dump(t, base.FSM); got != want {
		t.Fatalf("state after a refused restore:\n%s\nwant\n%s", got, want)
	}
}

// releaseDir holds what release 7054800 wrote (see its make.sh).
const releaseDir = "testdata/release-7054800"

// releaseTree returns the manifest of the site tree testdata made site's
// published deploy from: path -> hex SHA-256.
func releaseTree(t *testing.T, site string) map[string]string {
	t.Helper()
	root := filepath.Join(releaseDir, "sites", site)
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out["/"+filepath.ToSlash(rel)] = hashOf(string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkRelease checks that f holds what release 7054800's make.sh made.
func checkRelease(t *testing.T, f *FSM) {
	t.Helper()
	files := func(id string) map[string]string {
		out := map[string]string{}
		if err := f.Files(id, func(file atoll.File) error {
			out[file.Path] = file.Hash
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, name := range []string{"blog", "docs", "shop"} {
		site, err := f.Site(name)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := files(site.Published), releaseTree(t, name); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("site %s publishes %v, want %v", name, got, want)
		}
	}
	blog, _ := f.Deploys("blog")
	if len(blog) != 2 || blog[1].State != atoll.StateSuperseded {
		t.Errorf("blog's deploys: %+v, want the published one and the superseded first", blog)
	}
	shop, _ := f.Deploys("shop")
	if len(shop) != 2 || shop[0].State != atoll.StateUploading || shop[0].Files != 3 || len(files(shop[0].ID)) != 3 {
		t.Errorf("shop's deploys: %+v, want an upload of 3 files in progress first", shop)
	}
	if s, err := f.SiteByDomain("docs.example.com"); err != nil || s.Name != "docs" {
		t.Errorf("docs.example.com: %v %v", s.Name, err)
	}
	if c, err := f.Cert("docs.example.com"); err != nil || c.Site != "docs" || !strings.Contains(c.CertPEM, "BEGIN CERTIFICATE") {
		t.Errorf("certificate of docs.example.com: %+v, %v", c, err)
	}
}

// TestRestoreReleaseSnapshot: the snapshot release 7054800 saved (before
// feature levels) restores on this code as a raft snapshot and as a
// backup into a cluster at level 2, which keeps its level and writes on.
func TestRestoreReleaseSnapshot(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(releaseDir, "atoll.snap"))
	if err != nil {
		t.Fatal(err)
	}
	h := newFSM(t)
	if err := h.f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	checkRelease(t, h.f)
	if toks, _ := h.f.Tokens(); len(toks) != 1 || toks[0].Site != "blog" || toks[0].Name != "ci" {
		t.Errorf("tokens: %+v, want blog's ci", toks) // a backup restore keeps the live ones instead
	}
	if got := h.f.FeatureLevel(); got != atoll.LevelBase {
		t.Errorf("feature level of the release's state = %d, want %d", got, atoll.LevelBase)
	}

	s := singleNode(t, t.TempDir())
	mustApply(t, s, SetFeatureLevel{Level: atoll.LevelFeatureLevels})
	if _, err := s.RestoreBackup(ctxT(t, 30*time.Second), bytes.NewReader(data)); err != nil {
		t.Fatalf("RestoreBackup: %v", err)
	}
	checkRelease(t, s.FSM)
	if got := s.FeatureLevel(); got != atoll.LevelFeatureLevels {
		t.Errorf("feature level after the restore = %d, want %d kept", got, atoll.LevelFeatureLevels)
	}
	shop, _ := s.Deploys("shop")
	mustApply(t, s, FailDeployCmd(s.FeatureLevel(), shop[0].ID, "abandoned"))
	if d, _ := s.Deploy(shop[0].ID); d.State != atoll.StateFailed || d.Received != 0 {
		t.Errorf("the release's abandoned upload after FailDeploy: %+v, want failed without files", d)
	}
}
