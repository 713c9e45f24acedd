package main

// Crash tests: the real `atoll server` is killed with SIGKILL at random
// points of uploads, publishes, snapshots and repair, restarted, and
// checked:
//
//   - no partial blob is visible: every identity file under blobs/ hashes
//     to its name and every variant beside it decompresses to those bytes,
//     right after the kill (before anything could tidy up) and after the
//     restart; temp files only ever exist in the temp folders, and the
//     restart empties those and removes orphan variants;
//   - every acknowledged deploy (the API answered success) is intact: its
//     record is the one acknowledged (same created time, file count, bytes:
//     a command applied twice would change them) and every file is served
//     with its bytes, in every encoding;
//   - the publish history is consistent: the live deploy is the last one
//     acknowledged live, or the one whose publish was in flight at the
//     kill, it alone is "published", and it went live last; a deploy no
//     call was making never appears.
//
// The choices (operations, file contents, kill points) come from a seed,
// logged; ATOLL_CRASH_SEED=N replays them (the kill timing stays subject to
// the machine's speed). The test runs ~35 s of kill cycles in `make test`;
// ATOLL_SOAK=1 with -short=false runs it for ATOLL_SOAK_TIME (default 10m).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"

	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/builder/client"
)

const crashToken = "crash-test-token"

// crashFlags make Raft snapshot (and compact its log) every few commands,
// repair run all the time, and a restarted node elect itself quickly.
var crashFlags = []string{
	"--raft-snapshot-threshold", "8", "--raft-snapshot-interval", "50ms", "--raft-trailing-logs", "16",
	"--raft-timeout", "300ms", "--repair-interval", "200ms", "--min-free", "0",
}

// crashSeed returns the seed of this run, logged so a failure can be
// replayed.
func crashSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("ATOLL_CRASH_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("ATOLL_CRASH_SEED=%q: %v", v, err)
		}
	}
	t.Logf("seed %d (ATOLL_CRASH_SEED=%d replays these choices)", seed, seed)
	return seed
}

// crashBudget is how long the kill cycles run.
func crashBudget(t *testing.T, normal time.Duration) time.Duration {
	t.Helper()
	if os.Getenv("ATOLL_SOAK") == "" || testing.Short() {
		return normal
	}
	d := 10 * time.Minute
	if v := os.Getenv("ATOLL_SOAK_TIME"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("ATOLL_SOAK_TIME=%q: %v", v, err)
		}
	}
	t.Logf("soak: kill cycles for %s", d)
	return d
}

// crashDeploy is a deploy the test knows the content of: acknowledged, or
// adopted (its publish was in flight at a kill, and it went live).
type crashDeploy struct {
	rec   atoll.Deploy      // as acknowledged (adopted: as first seen)
	files map[string]string // manifest path -> content
}

// crashPending is the operation of a site in flight at the kill.
type crashPending struct {
	op      string            // "deploy", "tar", "publish"
	publish bool              // it would make a deploy live
	target  string            // publish: the deploy
	files   map[string]string // deploy, tar: the content
}

// crashSite is what the test knows of one site.
type crashSite struct {
	name    string
	live    string // the deploy live as acknowledged
	deploys map[string]*crashDeploy
	order   []string            // deploy ids, acknowledged order
	unacked map[string]struct{} // deploys made by calls whose answer was lost
	pending *crashPending
	rng     *rand.Rand
	seq     int
	dir     string // where deploys are written before DeployDir
}

// crashRun is one crash test: a server, its sites, and the kill schedule.
type crashRun struct {
	t       *testing.T
	s       *atolltest.Server   // the node the workload talks to
	edges   []*atolltest.Server // the nodes whose edge must serve every known deploy
	cl      *client.Client
	rng     *rand.Rand
	sites   []*crashSite
	killed  atomic.Bool   // the server was sent SIGKILL in this cycle
	upload  chan struct{} // a worker is uploading blobs
	publish chan struct{} // a worker is about to publish
	applied float64

	statsMu sync.Mutex
	stats   map[string]int // what the run exercised, for the log
}

func (r *crashRun) count(what string) {
	r.statsMu.Lock()
	r.stats[what]++
	r.statsMu.Unlock()
}

func newCrashRun(t *testing.T, s *atolltest.Server, seed uint64, sites ...string) *crashRun {
	r := &crashRun{
		t: t, s: s, rng: rand.New(rand.NewPCG(seed, 1)),
		cl:     client.New(s.APIURL(), crashToken),
		upload: make(chan struct{}, 1), publish: make(chan struct{}, 1),
		stats: map[string]int{}, edges: []*atolltest.Server{s},
	}
	for i, name := range sites {
		if _, err := r.cl.CreateSite(context.Background(), name, nil, atoll.MaxRetain); err != nil {
			t.Fatalf("create site %s: %v", name, err)
		}
		r.sites = append(r.sites, &crashSite{
			name: name, deploys: map[string]*crashDeploy{}, unacked: map[string]struct{}{},
			rng: rand.New(rand.NewPCG(seed, uint64(i)+100)), dir: t.TempDir(),
		})
	}
	return r
}

// crashWords makes compressible text.
var crashWords = strings.Fields("atoll static site <div class=card> </div> hosting edge lorem ipsum <p> </p> deploy blob raft snapshot crash")

func crashText(rng *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(crashWords[rng.IntN(len(crashWords))])
		b.WriteByte(' ')
	}
	return b.String()[:n]
}

// nextFiles makes the content of a site's next deploy: a small unique
// index (no variants), a file shared by every deploy (uploaded once),
// compressible pages, and sometimes a big text (streamed from disk by the
// edge) and incompressible bytes.
func (cs *crashSite) nextFiles() map[string]string {
	cs.seq++
	rng := cs.rng
	files := map[string]string{
		"/index.html": fmt.Sprintf("<h1>%s deploy %d</h1>", cs.name, cs.seq),
		"/shared.css": "body { font-family: sans-serif; margin: 0 auto; max-width: 40em; }\n" + strings.Repeat("/* shared */\n", 40),
	}
	for i := range 1 + rng.IntN(3) {
		files[fmt.Sprintf("/p/%d-%d.html", cs.seq, i)] = crashText(rng, 1<<10+rng.IntN(20<<10))
	}
	if rng.IntN(3) == 0 {
		files["/big.txt"] = crashText(rng, 70<<10+rng.IntN(100<<10))
	}
	if rng.IntN(3) == 0 {
		b := make([]byte, 70<<10+rng.IntN(60<<10))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		files["/bin.dat"] = string(b)
	}
	return files
}

func (r *crashRun) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// work runs operations on site cs until one fails (the kill) or ctx ends.
func (r *crashRun) work(ctx context.Context, cs *crashSite) {
	for ctx.Err() == nil {
		var err error
		var pend *crashPending
		switch k := cs.rng.IntN(10); {
		case k < 5 || len(cs.order) == 0: // a digest deploy, published 4 times out of 5
			files := cs.nextFiles()
			publish := cs.rng.IntN(5) > 0
			pend = &crashPending{op: "deploy", publish: publish, files: files}
			cs.pending = pend
			err = r.deployDir(ctx, cs, files, publish)
		case k < 7: // a one-shot tar upload, published
			files := cs.nextFiles()
			pend = &crashPending{op: "tar", publish: true, files: files}
			cs.pending = pend
			var d atoll.DeployResponse
			if d, err = r.cl.UploadTar(ctx, cs.name, crashTar(files), false, true); err == nil {
				cs.acked(d.Deploy, files, true)
			}
		default: // a rollback: publish an earlier deploy again
			id := cs.order[cs.rng.IntN(len(cs.order))]
			pend = &crashPending{op: "publish", publish: true, target: id}
			cs.pending = pend
			r.signal(r.publish)
			if _, err = r.cl.Rollback(ctx, id); err == nil {
				cs.live = id
			}
		}
		if err != nil {
			if !r.killed.Load() && ctx.Err() == nil {
				r.t.Errorf("site %s: %s failed while the server was up: %v", cs.name, pend.op, err)
			}
			return // in flight at the kill: cs.pending says what it was
		}
		cs.pending = nil
		r.count(pend.op + " acknowledged")
	}
}

func (r *crashRun) deployDir(ctx context.Context, cs *crashSite, files map[string]string, publish bool) error {
	if err := os.RemoveAll(cs.dir); err != nil {
		return err
	}
	tree := map[string]string{}
	for p, body := range files {
		tree[strings.TrimPrefix(p, "/")] = body
	}
	writeTree(r.t, cs.dir, tree)
	d, err := r.cl.DeployDir(ctx, cs.dir, cs.name, client.DeployOptions{
		Publish: publish,
		Progress: func(p client.Progress) {
			if p.Phase == client.PhaseUpload {
				r.signal(r.upload)
			}
		},
	})
	if err == nil {
		cs.acked(d.Deploy, files, publish)
	}
	return err
}

func (cs *crashSite) acked(d atoll.Deploy, files map[string]string, live bool) {
	cs.deploys[d.ID] = &crashDeploy{rec: d, files: files}
	cs.order = append(cs.order, d.ID)
	if live {
		cs.live = d.ID
	}
}

// crashTar is a tar of files (manifest path -> content), named "./path".
func crashTar(files map[string]string) io.Reader {
	named := map[string]string{}
	for p, body := range files {
		named["."+p] = body
	}
	return bytes.NewReader(atolltest.Tar(named))
}

// cycle runs the workload, kills the server at a point chosen by mode,
// checks the disk as the kill left it, restarts the server and checks
// everything acknowledged.
func (r *crashRun) cycle(n int, modes []string) {
	t := r.t
	mode := modes[r.rng.IntN(len(modes))]
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	r.killed.Store(false)
	for _, cs := range r.sites {
		wg.Go(func() { r.work(ctx, cs) })
	}
	// Let some work happen first, then aim.
	time.Sleep(time.Duration(300+r.rng.IntN(1200)) * time.Millisecond)
	var delay time.Duration
	hit := true
	switch mode {
	case "random":
		delay = time.Duration(r.rng.IntN(800)) * time.Millisecond
		time.Sleep(delay)
	case "upload", "publish":
		ch := r.upload
		if mode == "publish" {
			ch = r.publish
		}
		select {
		case <-ch: // drain an old signal, wait for a fresh one
		default:
		}
		select {
		case <-ch:
			delay = time.Duration(r.rng.IntN(20)) * time.Millisecond
			time.Sleep(delay)
		case <-time.After(3 * time.Second):
			hit = false
		}
	case "snapshot":
		hit = waitForSnapshot(filepath.Join(r.s.Data, "raft", "snapshots"), 3*time.Second)
	}
	r.killed.Store(true)
	r.s.Kill(syscall.SIGKILL)
	cancel()
	wg.Wait()
	r.count("kill during " + mode)
	if !hit {
		r.count("kill during " + mode + " (missed, killed anyway)")
	}
	t.Logf("cycle %d: SIGKILL aiming at %s (+%s, hit %v); in flight: %s", n, mode, delay, hit, r.inFlight())

	t0 := time.Now()
	leftovers := checkCrashedDir(t, r.s.Data)
	r.countLeftovers(leftovers)
	t1 := time.Now()
	r.s.Start()
	t2 := time.Now()
	checkLeftoversGone(t, r.s.Data, leftovers)
	checkCrashedDir(t, r.s.Data)
	r.checkAcknowledged()
	t.Logf("cycle %d: disk check %s, restart %s, checks after restart %s", n, t1.Sub(t0).Round(time.Millisecond),
		t2.Sub(t1).Round(time.Millisecond), time.Since(t2).Round(time.Millisecond))
}

// countLeftovers notes what a kill interrupted, judging by what it left.
func (r *crashRun) countLeftovers(leftovers []string) {
	kinds := map[string]bool{}
	for _, p := range leftovers {
		n := filepath.Base(p)
		switch {
		case strings.HasPrefix(n, "import-"):
			kinds["a blob copy from a peer (push or repair)"] = true
		case strings.HasPrefix(n, "put-"), strings.HasPrefix(n, "variant-"):
			kinds["an upload"] = true
		case strings.HasPrefix(n, "atoll-upload-"):
			kinds["a tar upload"] = true
		case strings.HasSuffix(n, ".tmp"):
			kinds["a raft snapshot"] = true
		case strings.Contains(n, "."):
			kinds["a blob's publish (orphan variants)"] = true
		}
	}
	for k := range kinds {
		r.count("killed amid " + k)
	}
}

func (r *crashRun) inFlight() string {
	var out []string
	for _, cs := range r.sites {
		if p := cs.pending; p != nil {
			out = append(out, fmt.Sprintf("%s:%s(publish=%v)", cs.name, p.op, p.publish))
		}
	}
	if len(out) == 0 {
		return "nothing"
	}
	return strings.Join(out, " ")
}

// waitForSnapshot polls the snapshot folder until a snapshot is being
// written (hashicorp/raft writes it into "<name>.tmp"), and reports whether
// it saw one within d.
func waitForSnapshot(dir string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".tmp") {
				return true
			}
		}
		time.Sleep(500 * time.Microsecond)
	}
	return false
}

// checkCrashedDir checks a data dir as a crash left it, from outside: every
// visible blob is complete (its identity file hashes to its name, every
// variant beside it decompresses to the same bytes), and unfinished writes
// are only where they belong: temp files in tmp/ and blobs/temp/, variants
// without an identity file (invisible), Raft's "<snapshot>.tmp/". It
// returns those leftovers, which the restart must remove.
func checkCrashedDir(t *testing.T, data string) (leftovers []string) {
	t.Helper()
	blobs := filepath.Join(data, "blobs")
	entries, err := os.ReadDir(blobs)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case name == "temp" || name == "quarantine" || name == "unsynced":
			continue // temp files are listed by the walk below
		case name == "tmp" && !e.IsDir():
			continue // the data-dir format's guard
		case len(name) == 2 && e.IsDir():
		default:
			t.Errorf("unexpected entry blobs/%s", name)
			continue
		}
		shard := filepath.Join(blobs, name)
		names, err := os.ReadDir(shard)
		if err != nil {
			t.Fatal(err)
		}
		present := map[string]bool{}
		for _, f := range names {
			present[f.Name()] = true
		}
		for _, f := range names {
			n := f.Name()
			hash, ext, _ := strings.Cut(n, ".")
			if len(hash) != 64 || hash[:2] != name {
				t.Errorf("blobs/%s/%s: not a blob file name", name, n)
				continue
			}
			if ext != "" && !present[hash] {
				leftovers = append(leftovers, filepath.Join(shard, n)) // invisible: no identity file
				continue
			}
			if ext == "pending" {
				continue // empty marker: the variants are still to be made (blobstore I14)
			}
			if got, err := crashHashFile(filepath.Join(shard, n), ext); err != nil || got != hash {
				t.Errorf("blobs/%s/%s: visible but does not hash to its name (got %s, %v): a partial or corrupt blob", name, n, got, err)
			}
		}
	}
	filepath.WalkDir(data, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(data, p)
		rel = filepath.ToSlash(rel)
		n := d.Name()
		switch {
		case d.IsDir() && strings.HasSuffix(n, ".tmp") && strings.HasPrefix(rel, "raft/snapshots/"):
			leftovers = append(leftovers, p) // a snapshot being written
			return filepath.SkipDir
		case d.IsDir():
		case strings.HasPrefix(rel, "tmp/") || strings.HasPrefix(rel, "blobs/temp/"):
			leftovers = append(leftovers, p)
		case strings.HasPrefix(n, "put-") || strings.HasPrefix(n, "import-") || strings.HasPrefix(n, "variant-") ||
			strings.HasPrefix(n, "atoll-upload-") || strings.Contains(n, ".tmp"):
			t.Errorf("temp file outside the temp folders: %s", rel)
		}
		return nil
	})
	return leftovers
}

// checkLeftoversGone checks that the restart removed what the crash left.
// An orphan variant may be back as part of a complete blob (a copy of that
// blob arrived since): checkCrashedDir vouches for those.
func checkLeftoversGone(t *testing.T, data string, leftovers []string) {
	t.Helper()
	for _, p := range leftovers {
		if hash, ext, _ := strings.Cut(filepath.Base(p), "."); ext != "" && len(hash) == 64 {
			if _, err := os.Stat(filepath.Join(filepath.Dir(p), hash)); err == nil {
				continue
			}
		}
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			rel, _ := filepath.Rel(data, p)
			t.Errorf("left by the crash and still there after the restart: %s (%v)", rel, err)
		}
	}
}

// crashHashFile returns the SHA-256 of a blob file's content, decompressed
// for a variant ("br", "zst", "gz").
func crashHashFile(path, ext string) (string, error) {
	enc, ok := map[string]string{"": "", "gz": "gzip", "br": "br", "zst": "zstd"}[ext]
	if !ok {
		return "", fmt.Errorf("unknown variant %q", ext)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if b, err = atolltest.Decode(enc, b); err != nil {
		return "", err
	}
	return atolltest.SHA256Hex(b), nil
}

// checkAcknowledged checks every site against what was acknowledged, and
// settles what was in flight at the kill.
func (r *crashRun) checkAcknowledged() {
	t := r.t
	t.Helper()
	ctx := context.Background()
	var st atoll.Status
	if code, body := r.s.API("GET", "/v1/status", crashToken, "", nil); code == 200 {
		st.AppliedIndex = uint64(body["applied_index"].(float64))
	}
	if float64(st.AppliedIndex) < r.applied {
		t.Errorf("applied index went back across a crash: %v -> %d", r.applied, st.AppliedIndex)
	}
	r.applied = float64(st.AppliedIndex)

	for _, cs := range r.sites {
		site, err := r.cl.Site(ctx, cs.name)
		if err != nil {
			t.Fatalf("site %s after restart: %v", cs.name, err)
		}
		list, err := r.cl.Deploys(ctx, cs.name)
		if err != nil {
			t.Fatalf("deploys of %s after restart: %v", cs.name, err)
		}
		server := map[string]atoll.Deploy{}
		for _, d := range list {
			server[d.ID] = d.Deploy
		}

		// The live deploy: the last acknowledged, or the pending publish.
		p := cs.pending
		switch live := site.Published; {
		case live == cs.live:
		case p != nil && p.op == "publish" && live == p.target:
			cs.live = live
		case p != nil && p.publish && cs.deploys[live] == nil && live != "":
			// The in-flight deploy went live: its content is known.
			cs.deploys[live] = &crashDeploy{rec: server[live], files: p.files}
			cs.order = append(cs.order, live)
			cs.live = live
			r.count("in-flight publish went live")
		default:
			t.Errorf("site %s: live deploy %q, want %q (last acknowledged) or the in-flight %+v", cs.name, live, cs.live, p)
			cs.live = live
		}

		// Deploys nobody acknowledged: only from the call in flight.
		fresh := 0
		for id := range server {
			if cs.deploys[id] == nil {
				if _, seen := cs.unacked[id]; !seen {
					cs.unacked[id] = struct{}{}
					fresh++
				}
			}
		}
		if fresh > 0 && (p == nil || p.op == "publish" || fresh > 1) {
			t.Errorf("site %s: %d deploys appeared that no call in flight was making (in flight: %+v)", cs.name, fresh, p)
		}
		if fresh > 0 {
			r.count("unacknowledged deploy left behind")
		}
		cs.pending = nil

		// Acknowledged deploys: records as acknowledged, states consistent.
		var latest time.Time
		published := 0
		for _, d := range server {
			if d.State == atoll.StatePublished {
				published++
			}
			if d.PublishedAt.After(latest) {
				latest = d.PublishedAt
			}
		}
		if want := min(len(cs.live), 1); published != want {
			t.Errorf("site %s: %d deploys in state published, want %d", cs.name, published, want)
		}
		if cs.live != "" && !server[cs.live].PublishedAt.Equal(latest) {
			t.Errorf("site %s: live deploy %s went live at %s, but another went live later (%s)", cs.name, cs.live, server[cs.live].PublishedAt, latest)
		}
		for _, id := range cs.order {
			want, got := cs.deploys[id].rec, server[id]
			switch {
			case got.ID == "":
				t.Errorf("site %s: acknowledged deploy %s is gone", cs.name, id)
				continue
			case got.Site != want.Site || !got.Created.Equal(want.Created) || got.Files != want.Files ||
				got.Received != want.Received || got.Bytes != want.Bytes:
				t.Errorf("site %s: deploy %s changed across the crash:\n got  %+v\n want %+v", cs.name, id, got, want)
			case got.State == atoll.StatePublished && id != cs.live, got.State != atoll.StatePublished && id == cs.live:
				t.Errorf("site %s: deploy %s in state %s, live is %s", cs.name, id, got.State, cs.live)
			case got.State != atoll.StateReady && got.State != atoll.StatePublished && got.State != atoll.StateSuperseded:
				t.Errorf("site %s: acknowledged deploy %s in state %s", cs.name, id, got.State)
			}
		}
		r.checkServed(cs)
	}
}

// checkServed reads every file of every known deploy through its preview
// host (identity bytes, and one compressed encoding picked at random), and
// the live deploy through the site's host.
func (r *crashRun) checkServed(cs *crashSite) {
	t := r.t
	t.Helper()
	encodings := []string{"gzip", "br", "zstd"}
	for _, id := range cs.order {
		d := cs.deploys[id]
		hosts := []string{id + "--" + cs.name + ".localhost"}
		if id == cs.live {
			hosts = append(hosts, cs.name+".localhost")
		}
		for _, edge := range r.edges {
			for _, host := range hosts {
				for path, want := range d.files {
					for _, enc := range []string{"", encodings[r.rng.IntN(len(encodings))]} {
						status, got, err := crashGet(edge, host, path, enc)
						if err != nil || status != 200 || got != want {
							t.Errorf("%s: %s%s (Accept-Encoding %q): %d, %d bytes, %v; want 200 and the acknowledged %d bytes",
								edge.ID, host, path, enc, status, len(got), err, len(want))
						}
					}
				}
			}
		}
	}
}

// crashGet reads path of host from edge, asking for encoding enc, and
// returns the decoded body.
func crashGet(edge *atolltest.Server, host, path, enc string) (int, string, error) {
	resp, body, err := edge.Fetch(context.Background(), "GET", host, path, "Accept-Encoding", enc)
	if err != nil {
		return 0, "", err
	}
	body, err = atolltest.Decode(resp.Header.Get("Content-Encoding"), body)
	return resp.StatusCode, string(body), err
}

func TestCrashRecovery(t *testing.T) {
	seed := crashSeed(t)
	budget := crashBudget(t, 25*time.Second)
	s := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true, AdminToken: crashToken, Flags: crashFlags})
	s.Start()
	r := newCrashRun(t, s, seed, "alpha", "beta")
	modes := []string{"random", "upload", "publish", "snapshot"}
	start := time.Now()
	cycles := 0
	for time.Since(start) < budget && !t.Failed() {
		cycles++
		r.cycle(cycles, modes)
	}
	snaps, _ := os.ReadDir(filepath.Join(s.Data, "raft", "snapshots"))
	deploys := 0
	for _, cs := range r.sites {
		deploys += len(cs.order)
	}
	t.Logf("%d kill cycles in %s; %d deploys acknowledged and checked after every crash; %d snapshots on disk; %v",
		cycles, time.Since(start).Round(time.Second), deploys, len(snaps), r.stats)
	if deploys == 0 || cycles < 3 {
		t.Errorf("the test exercised little: %d cycles, %d deploys", cycles, deploys)
	}
}

// TestCrashRecoveryDuringRepair runs three core nodes (R = 3: each holds
// every blob) under a stream of deploys through core1, and SIGKILLs a
// follower at random points, over and over: while it takes pushed blobs,
// and after its restart while repair has it pull the blobs it missed. After
// each kill its disk shows no partial blob and the restart removes what the
// crash left; at the end repair brings it back to every blob, and every
// acknowledged deploy is served intact by every node.
func TestCrashRecoveryDuringRepair(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes")
	}
	seed := crashSeed(t)
	budget := crashBudget(t, 15*time.Second)
	mk := func(id string, flags ...string) *atolltest.Server {
		flags = append(append([]string{"--cluster-key", "crash-cluster-key"}, crashFlags...), flags...)
		return atolltest.NewServer(t, atolltest.NodeConfig{ID: id, AdminToken: crashToken, Flags: flags})
	}
	core1 := mk("core1")
	core1.Bootstrap = true
	core1.Start()
	core2, core3 := mk("core2", "--join", "http://"+core1.APIAddr), mk("core3", "--join", "http://"+core1.APIAddr)
	core2.Start()
	core3.Start()
	cores := []*atolltest.Server{core1, core2, core3}
	r := newCrashRun(t, core1, seed, "gamma", "delta")
	r.edges = cores

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, cs := range r.sites {
		wg.Go(func() { r.work(ctx, cs) }) // core1 is never killed: every call must succeed
	}
	start := time.Now()
	kills := 0
	victim := core2
	var restarted *atolltest.Server // the follower restarted last
	for time.Since(start) < budget && !t.Failed() {
		if leaderOf(t, core1, cores) == victim || r.rng.IntN(2) == 0 {
			victim = map[*atolltest.Server]*atolltest.Server{core2: core3, core3: core2}[victim]
		}
		if leaderOf(t, core1, cores) == victim {
			continue
		}
		if restarted != nil && restarted != victim {
			// Uploads go on with 2 of 3 owners only once core1 reaches
			// the one restarted last: until a probe answers (50 to
			// 500 ms apart) it skips a peer whose calls failed.
			waitReachable(t, core1, restarted)
		}
		// Killed soon after its restart, while repair has it pull what it
		// missed; or later, while it takes pushed uploads.
		aim := "repair"
		if kills == 0 || r.rng.IntN(2) == 0 {
			aim = "uploads"
			time.Sleep(time.Duration(300+r.rng.IntN(900)) * time.Millisecond)
		} else {
			time.Sleep(time.Duration(r.rng.IntN(250)) * time.Millisecond)
		}
		r.count("kill aiming at " + aim)
		victim.Kill(syscall.SIGKILL)
		kills++
		leftovers := checkCrashedDir(t, victim.Data)
		r.countLeftovers(leftovers)
		time.Sleep(time.Duration(r.rng.IntN(800)) * time.Millisecond) // uploads go on with 2 of 3 owners
		t0 := time.Now()
		victim.Start()
		checkLeftoversGone(t, victim.Data, leftovers)
		checkCrashedDir(t, victim.Data)
		t.Logf("kill %d: %s, restarted in %s", kills, victim.ID, time.Since(t0).Round(time.Millisecond))
		restarted = victim
	}
	cancel()
	wg.Wait()

	// Repair brings every blob of every known deploy back to its three
	// owners. (Not the census's "missing" count: it also counts blobs of
	// the deploy whose upload the end of the test cut short, which nobody
	// will ever upload.)
	var want []string
	for _, cs := range r.sites {
		for _, d := range cs.deploys {
			for _, body := range d.files {
				want = append(want, atolltest.SHA256Hex(body))
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range cores {
		for _, h := range want {
			for {
				if _, err := os.Stat(filepath.Join(s.Data, "blobs", h[:2], h)); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s still lacks blob %s 30s after the last kill", s.ID, h[:12])
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	for _, s := range cores {
		checkCrashedDir(t, s.Data)
	}
	r.checkAcknowledged()
	deploys := 0
	for _, cs := range r.sites {
		deploys += len(cs.order)
	}
	t.Logf("%d kills of a follower in %s; %d deploys acknowledged, all intact on every node; %v",
		kills, time.Since(start).Round(time.Second), deploys, r.stats)
	if kills < 3 || deploys == 0 {
		t.Errorf("the test exercised little: %d kills, %d deploys", kills, deploys)
	}
}

// waitReachable waits until s's GET /v1/status shows node n as reachable
// (s's calls to it are no longer skipped), at most 15 s.
func waitReachable(t *testing.T, s, n *atolltest.Server) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		_, st := s.API("GET", "/v1/status", s.Token(), "", nil)
		nodes, _ := st["nodes"].([]any)
		for _, v := range nodes {
			if nd, _ := v.(map[string]any); nd["id"] == n.ID && nd["raft_state"] != "unreachable" && nd["raft_state"] != nil {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s still unreachable from %s after 15 s", n.ID, s.ID)
}
