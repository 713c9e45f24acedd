package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	bolt "go.etcd.io/bbolt"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/raft"
)

// releaseDir holds the snapshot release 7054800 saved, the trees its sites
// were deployed from and its cluster key (see its make.sh).
const releaseDir = "../../raft/testdata/release-7054800"

// raiseLevel raises the cluster of s to MaxFeatureLevel the way its
// leader does once every node knows the level: a SetFeatureLevel through
// the peer apply endpoint (a resend of the same level is a no-op).
func raiseLevel(t *testing.T, s *atolltest.Server, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := peer.New(key).Apply(ctx, s.APIURL(), raft.SetFeatureLevel{Level: atoll.MaxFeatureLevel}); err != nil {
		t.Fatalf("raise the feature level: %v", err)
	}
}

// releaseNode starts a node with release 7054800's cluster key at
// MaxFeatureLevel, holding the blobs of the release's sites (a snapshot
// has none): the same trees deployed, as sites of the same names. It
// returns the node and those sites.
func releaseNode(t *testing.T) (*atolltest.Server, []string) {
	t.Helper()
	keyFile, _ := filepath.Abs(filepath.Join(releaseDir, "cluster-key"))
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true, Flags: []string{"--cluster-key-file", keyFile}})
	s.Start()
	waitAdmin(t, s)
	raiseLevel(t, s, strings.TrimSpace(string(key)))
	sites := []string{"blog", "docs", "shop"}
	for _, site := range sites {
		s.MustCLI("site", "create", site)
		s.MustCLI("deploy", filepath.Join(releaseDir, "sites", site), "--site", site)
	}
	return s, sites
}

// tree reads the files under dir: site path -> content.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out["/"+filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEndToEndRestoreReleaseSnapshot: the snapshot release 7054800 saved
// (before feature levels) restores through `atoll snapshot restore` into a
// cluster of this binary at feature level 2, and its sites are served
// byte-exact, also at their custom domain, with the certificate listed.
func TestEndToEndRestoreReleaseSnapshot(t *testing.T) {
	t.Parallel()
	s, sites := releaseNode(t)
	s.MustCLI("site", "create", "later")

	out := s.MustCLI("snapshot", "restore", filepath.Join(releaseDir, "atoll.snap"))
	t.Logf("%s", strings.TrimSpace(out))
	if out := s.MustCLI("site", "list"); strings.Contains(out, "later") {
		t.Errorf("site list after the restore:\n%s\nwant the release's sites alone", out)
	}
	for _, site := range sites {
		for path, want := range tree(t, filepath.Join(releaseDir, "sites", site)) {
			if resp, body := s.Get("GET", site+".localhost", path); resp.StatusCode != 200 || body != want {
				t.Errorf("%s%s: %d %q, want %q", site, path, resp.StatusCode, body, want)
			}
		}
	}
	if _, body := s.Get("GET", "docs.example.com", "/guide/"); body != "<h1>guide</h1>\n" {
		t.Errorf("docs.example.com/guide/ serves %q", body)
	}
	if out := s.MustCLI("cert", "list", "--site", "docs"); !strings.Contains(out, "docs.example.com") {
		t.Errorf("cert list --site docs:\n%s\nwant the release's certificate", out)
	}
	if out := s.MustCLI("deploys", "--site", "blog"); !strings.Contains(out, "superseded") {
		t.Errorf("blog's deploys:\n%s\nwant the release's superseded first deploy", out)
	}
}

// withLevel returns snapshot snap with its state's feature level set to
// level, as a newer atoll would have saved it.
func withLevel(t *testing.T, snap []byte, level int) []byte {
	t.Helper()
	const header = len("ATOLLFSM") + 1 + 16
	// A decoder for DecodeAll alone is made without a reader: one made
	// with a reader starts decoding it ahead, taking block decoders that
	// nothing gives back until the stream is read, and DecodeAll then
	// waits for a free one (for ever, in a CI run with 2 of them).
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	state, err := dec.DecodeAll(snap[header:], nil)
	dec.Close()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, state, 0o600); err != nil {
		t.Fatal(err)
	}
	setLevelFile(t, path, level)
	if state, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	return enc.EncodeAll(state, append([]byte(nil), snap[:header]...))
}

// setLevelFile writes a feature level into the FSM file at path (the
// bucket "meta", key "feature_level": a disk format, raft/DESIGN.md).
func setLevelFile(t *testing.T, path string, level int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("feature_level"), []byte(strconv.Itoa(level)))
	}); err != nil {
		t.Fatal(err)
	}
}

func sumFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return atolltest.SHA256Hex(string(b))
}

// wantNewerLine checks that out holds exactly one line that tells the user
// to run a newer atoll, with each of parts.
func wantNewerLine(t *testing.T, what, out string, parts ...string) {
	t.Helper()
	out = strings.TrimSpace(out)
	t.Logf("%s: %s", what, out)
	for _, p := range append(parts, "run a newer atoll") {
		if !strings.Contains(out, p) {
			t.Errorf("%s: %q, want it to say %q", what, out, p)
		}
	}
	if strings.Contains(out, "\n") {
		t.Errorf("%s: %q, want one line", what, out)
	}
}

// TestEndToEndRefusesNewerState: a snapshot saved by a newer atoll (a
// higher feature level, or a newer snapshot format) is refused by `atoll
// snapshot restore` with one line and nothing restored; a data dir whose
// state a newer atoll raised past this binary's level is refused at start
// with one line, and neither fsm.db nor raft.db changes.
func TestEndToEndRefusesNewerState(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	s.Start()
	waitAdmin(t, s)
	s.MustCLI("site", "create", "blog")
	dir := t.TempDir()
	saved := filepath.Join(dir, "saved.snap")
	s.MustCLI("snapshot", "save", saved)
	good, err := os.ReadFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	s.MustCLI("site", "create", "later")

	newer := withLevel(t, good, atoll.MaxFeatureLevel+1)
	format := append([]byte(nil), good...)
	format[len("ATOLLFSM")]++
	for name, data := range map[string][]byte{"level": newer, "format": format} {
		path := filepath.Join(dir, name+".snap")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("feature level %d", atoll.MaxFeatureLevel+1)
		if name == "format" {
			want = fmt.Sprintf("format version %d", good[len("ATOLLFSM")]+1)
		}
		wantNewerLine(t, "restore of a snapshot of a newer "+name, s.FailCLI("snapshot", "restore", path), want)
	}
	if out := s.MustCLI("site", "list"); !strings.Contains(out, "later") {
		t.Errorf("a refused restore changed the sites:\n%s", out)
	}

	s.Kill(syscall.SIGTERM)
	fsmPath, logPath := filepath.Join(s.Data, "raft", "fsm.db"), filepath.Join(s.Data, "raft", "raft.db")
	setLevelFile(t, fsmPath, atoll.MaxFeatureLevel+1)
	fsmSum, logSum := sumFile(t, fsmPath), sumFile(t, logPath)
	if err := s.Launch(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(60 * time.Second):
		t.Fatalf("a node on a data dir at feature level %d still runs after 60s:\n%s", atoll.MaxFeatureLevel+1, s.Output())
	}
	lines := strings.Split(strings.TrimSpace(s.Output()), "\n")
	wantNewerLine(t, "start on a newer data dir", lines[len(lines)-1], fmt.Sprintf("feature level %d", atoll.MaxFeatureLevel+1), fsmPath)
	if sumFile(t, fsmPath) != fsmSum || sumFile(t, logPath) != logSum {
		t.Error("the refused start changed fsm.db or raft.db")
	}
}

// TestEndToEndAbandonedManifestsGiveRoomBack: at feature level 2, an
// abandoned 10k-entry manifest expires into a failed deploy without files
// (listed with its reason), its blobs stop counting as referenced, and the
// raft state does not grow with one abandoned manifest after another (the
// snapshot's size stays put).
func TestEndToEndAbandonedManifestsGiveRoomBack(t *testing.T) {
	const key, rounds, entries = "formats-cluster-key", 4, 10_000
	s := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true,
		Flags: []string{"--cluster-key", key, "--deploy-expiry", "5s", "--repair-interval", "500ms"}})
	s.Start()
	waitAdmin(t, s)
	raiseLevel(t, s, key)
	s.MustCLI("site", "create", "blog")
	live := t.TempDir()
	writeTree(t, live, map[string]string{"index.html": "<h1>live</h1>"})
	s.MustCLI("deploy", live, "--site", "blog")

	var sizes []int64
	for round := range rounds {
		var m strings.Builder
		m.WriteString(`{"files": {`)
		for i := range entries {
			if i > 0 {
				m.WriteByte(',')
			}
			fmt.Fprintf(&m, "%q: %q", fmt.Sprintf("/r%d/%05d.html", round, i), atolltest.SHA256Hex(fmt.Sprintf("never %d %d", round, i)))
		}
		m.WriteString(`}}`)
		var created atoll.DeployResponse
		if err := s.Call(t.Context(), "POST", "/v1/sites/blog/deploys", strings.NewReader(m.String()), &created); err != nil {
			t.Fatal(err)
		}
		if created.State != atoll.StateUploading || created.Received != entries {
			t.Fatalf("round %d: created %s with %d of %d entries; want the whole manifest uploading (a slower machine needs a longer --deploy-expiry)",
				round, created.State, created.Received, entries)
		}
		d := waitDeploy(t, s, created.ID, func(d atoll.DeployResponse) bool { return d.State != atoll.StateUploading })
		failedAt := time.Now()
		if d.State != atoll.StateFailed || !strings.Contains(d.Reason, "--deploy-expiry") || d.Received != 0 {
			t.Fatalf("abandoned deploy: state %s, %d files received, reason %q; want failed without files, naming --deploy-expiry", d.State, d.Received, d.Reason)
		}
		if rep := censusAfter(t, s, failedAt); rep.Referenced != 1 {
			t.Errorf("round %d: the census after the expiry counts %d referenced blobs, want 1 (the live page)", round, rep.Referenced)
		}
		path := filepath.Join(t.TempDir(), "state.snap")
		s.MustCLI("snapshot", "save", path)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, fi.Size())
	}
	t.Logf("snapshot sizes after each abandoned manifest: %v", sizes)
	// One manifest's hashes alone are 10k x 32 random bytes: were the
	// manifests kept, each would add at least that much. The first one
	// stays in the size (a snapshot copies the file up to its high-water
	// mark, free pages included); the next ones reuse its pages.
	if grew := sizes[rounds-1] - sizes[0]; grew > entries*32/2 {
		t.Errorf("the snapshot grew by %d bytes over %d more abandoned manifests (sizes %v), want it to stay put", grew, rounds-1, sizes)
	}
	if _, body := s.Get("GET", "blog.localhost", "/"); body != "<h1>live</h1>" {
		t.Errorf("the live site serves %q", body)
	}
}

// censusAfter waits (30s at most) for the leader's first repair census that
// started after since, and returns it.
func censusAfter(t *testing.T, s *atolltest.Server, since time.Time) atoll.RepairReport {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st atoll.Status
		if err := s.Call(t.Context(), "GET", "/v1/status", nil, &st); err != nil {
			t.Fatal(err)
		}
		if st.Repair != nil && st.Repair.At.After(since) {
			return *st.Repair
		}
		if time.Now().After(deadline) {
			t.Fatalf("no repair census in the 30s after %s: %+v", since, st.Repair)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
