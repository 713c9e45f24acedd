package upgrade

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
)

func TestMain(m *testing.M) { os.Exit(atolltest.Main(m)) }

const clusterKey, adminToken = "upgrade-cluster-key", "upgrade-admin-token"

// readSites are deployed again and again during the upgrade and read
// through every node; secureSite is the one whose --https-only waits for
// the new feature level (readers leave it alone: it answers 308 then).
var readSites = []string{"alpha", "beta", "gamma"}

const secureSite = "secure"

// TestRollingUpgrade starts 3 core nodes and 1 edge on the previous
// release (PREVIOUS_RELEASE), deploys sites, then replaces each node with
// the current binary one at a time, core followers and the edge first and
// the leader last (SIGTERM, wait for the exit, same data dir and flags,
// wait until /readyz answers 200 and it applied what the leader
// committed), while a writer keeps deploying and publishing and one reader
// per node keeps fetching every site through it. It checks:
//
//   - no failed read through a node that is up. A node is down from just
//     before its SIGTERM until the new binary is ready: the replacement
//     first waits for the requests in flight to it to end and sends no
//     more (a load balancer draining it), so no counted request overlaps
//     the SIGTERM; a read that fails on any other node, also one whose
//     blobs sat on the node being replaced, is a failure;
//   - no acknowledged deploy lost, and every site served byte-exact
//     through every node afterwards;
//   - --https-only refused (409, naming the nodes still on the old binary)
//     while one remains (400 through a node of the old binary, which does
//     not know the field), accepted once the leader raised the cluster's
//     feature level, and the new version in /v1/nodes;
//   - the old binary, started on a data dir the new one ran on, exits
//     non-zero with one error line (beside the log records of its failed
//     start) and leaves every file as it was;
//   - the current binary exits 0 on SIGTERM.
//
// Failed writes are allowed (a deploy through a node whose leader is
// handing over may fail and be retried); the longest time without an
// acknowledged write and the failed reads per node are logged as the
// downtime of the upgrade.
func TestRollingUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the previous release and starts four processes")
	}
	tmp := t.TempDir()
	oldBin, _ := buildPrevious(t, tmp)
	c := &cluster{t: t, begin: time.Now(), tmp: tmp, oldBin: oldBin, newBin: atolltest.Bin()}
	c.newVersion = c.binaryVersion(c.newBin)
	c.start()
	md := newModel(readSites)
	c.createSites(md)

	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for _, m := range c.members {
		wg.Go(func() { read(ctx, m, md, readSites) })
	}
	wg.Go(func() { write(ctx, c.members, md, readSites, adminToken) })
	for range c.members {
		m := c.next()
		c.replace(m)
		c.waitTraffic(m, md)
		if old := c.old(); len(old) > 0 {
			c.checkRefused(m, old)
		}
	}
	stop()
	wg.Wait()
	c.report(md)

	c.checkFeatureLevel()
	c.checkOldBinaryRefuses()
	c.checkServed(md)
	c.stopAll()
}

// cluster is the four nodes of the test and the two binaries.
type cluster struct {
	t                  *testing.T
	begin              time.Time
	tmp                string
	oldBin, newBin     string
	newVersion         string // the release `atoll version` of newBin prints
	members            []*member
	replaced, refusals int
}

func (c *cluster) logf(format string, args ...any) {
	c.t.Helper()
	c.t.Logf("%6.1fs  %s", time.Since(c.begin).Seconds(), fmt.Sprintf(format, args...))
}

// binaryVersion is the release `bin version` prints on its first line
// ("atoll <release>"); a node reports it, or it followed by "+<commit>".
func (c *cluster) binaryVersion(bin string) string {
	c.t.Helper()
	out, err := runBin(c.t.Context(), bin, "version")
	if err != nil {
		c.t.Fatal(err)
	}
	first, _, _ := strings.Cut(out, "\n")
	v, ok := strings.CutPrefix(strings.TrimSpace(first), "atoll ")
	if !ok || v == "" {
		c.t.Fatalf("%s version: %q, want \"atoll <release>\" first", bin, out)
	}
	return v
}

// start starts core1 (bootstrap), core2, core3 and edge1 (--join core1) on
// the old binary, each once the one before is ready. The flags stay the
// same at every launch: --bootstrap and --join are no-ops once a data dir
// holds a cluster.
func (c *cluster) start() {
	for i, id := range []string{"core1", "core2", "core3", "edge1"} {
		// An HTTPS listener on every edge: --https-only needs one.
		https, err := atolltest.FreeAddr()
		if err != nil {
			c.t.Fatal(err)
		}
		cfg := atolltest.NodeConfig{
			Bin: c.oldBin, ID: id, Data: filepath.Join(c.tmp, id), Bootstrap: i == 0, AdminToken: adminToken,
			Flags:   []string{"--cluster-key", clusterKey, "--https-addr", https},
			LogPath: filepath.Join(c.tmp, id+".log"),
		}
		if i > 0 {
			cfg.Flags = append(cfg.Flags, "--join", "http://"+c.members[0].APIAddr)
		}
		if strings.HasPrefix(id, "edge") {
			cfg.Flags = append(cfg.Flags, "--role", "edge")
		}
		m := &member{Server: atolltest.NewServer(c.t, cfg), up: true}
		m.Start()
		c.members = append(c.members, m)
	}
	c.logf("3 core + 1 edge on %s ready", filepath.Base(c.oldBin))
}

// createSites creates the sites (retaining every deploy, so none the test
// acknowledged may go) and publishes a first version of each, then waits
// until every node serves them.
func (c *cluster) createSites(md *model) {
	t, via := c.t, c.members[0]
	for _, s := range append(readSites, secureSite) {
		if status, body := via.API("POST", "/v1/sites", adminToken, "application/json", strings.NewReader(fmt.Sprintf(`{"name":%q,"retain":1000}`, s))); status != http.StatusCreated {
			t.Fatalf("create site %s: %d %v", s, status, body)
		}
	}
	for _, s := range readSites {
		writeOnce(t.Context(), via, md, s, adminToken, false)
		if v := md.acked(s); len(v) != 1 {
			t.Fatalf("first deploy of %s through %s was not acknowledged", s, via.ID)
		}
	}
	if status, body := via.API("POST", "/v1/sites/"+secureSite+"/deploys?publish=true", adminToken, "application/x-tar", strings.NewReader(string(atolltest.Tar(map[string]string{"index.html": "secure"})))); status != http.StatusCreated {
		t.Fatalf("deploy %s: %d %v", secureSite, status, body)
	}
	for _, m := range c.members {
		for _, s := range readSites {
			c.eventually(fmt.Sprintf("%s serves %s v1", m.ID, s), func() error { return served(t.Context(), m, s, content(s, 1)) })
		}
	}
}

// served checks that m's edge answers each of files' paths for site with
// its body.
func served(ctx context.Context, m *member, site string, files map[string]string) error {
	for _, p := range sitePaths {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, body, err := m.Fetch(rctx, "GET", site+".localhost", p)
		cancel()
		switch {
		case err != nil:
			return err
		case resp.StatusCode != http.StatusOK || string(body) != files[p]:
			return fmt.Errorf("%s%s through %s: %d %q, want 200 %q", site, p, m.ID, resp.StatusCode, body, files[p])
		}
	}
	return nil
}

// status is GET /v1/status through m.
func (c *cluster) status(m *member) (atoll.Status, error) {
	var st atoll.Status
	ctx, cancel := context.WithTimeout(c.t.Context(), 10*time.Second)
	defer cancel()
	return st, m.Call(ctx, "GET", "/v1/status", nil, &st)
}

// leader is the member that leads, as an up member sees it.
func (c *cluster) leader() *member {
	c.t.Helper()
	var lead *member
	c.eventually("a leader is known", func() error {
		for _, m := range c.members {
			var st atoll.Status
			var err error
			if !m.use(func() { st, err = c.status(m) }) {
				continue
			}
			if err != nil {
				return err
			}
			for _, l := range c.members {
				if l.ID == st.LeaderID {
					lead = l
					return nil
				}
			}
			return fmt.Errorf("%s knows no leader", m.ID)
		}
		return fmt.Errorf("no member is up")
	})
	return lead
}

// next is the member to replace: a core follower still on the old binary,
// else the edge, else the leader.
func (c *cluster) next() *member {
	lead := c.leader()
	var pick *member
	for _, m := range c.members {
		if m.upgraded || m == lead {
			continue
		}
		if pick == nil || !strings.HasPrefix(m.ID, "edge") && strings.HasPrefix(pick.ID, "edge") {
			pick = m
		}
	}
	if pick == nil {
		pick = lead
	}
	return pick
}

// old is the members still on the old binary.
func (c *cluster) old() []*member {
	var out []*member
	for _, m := range c.members {
		if !m.upgraded {
			out = append(out, m)
		}
	}
	return out
}

// replace stops m with SIGTERM once the traffic has left it, and starts
// the new binary on the same data dir with the same flags; m is up again
// once it is ready and has applied what the leader had committed.
func (c *cluster) replace(m *member) {
	lead := c.leader()
	m.setUp(false)
	down := time.Now()
	c.stop(m)
	exited := time.Since(down)
	m.Bin, m.upgraded = c.newBin, true
	m.Start()
	c.caughtUp(m)
	m.setUp(true)
	c.replaced++
	role := "follower"
	switch {
	case m == lead:
		role = "leader"
	case strings.HasPrefix(m.ID, "edge"):
		role = "edge"
	}
	c.logf("%s (%s) replaced: exited %s after SIGTERM, new binary ready and caught up %s after it", m.ID, role,
		exited.Round(time.Millisecond), time.Since(down).Round(time.Millisecond))
}

// stop stops m with SIGTERM and waits until it exited: by itself, and,
// on the current binary, with status 0. The previous release may end a
// clean stop with status 1 (7054800 does, with an HTTPS listener: it
// reports the listener closed twice), which the upgrade cannot change.
func (c *cluster) stop(m *member) {
	c.t.Helper()
	m.Kill(syscall.SIGTERM)
	switch code := m.ExitCode(); {
	case code < 0:
		c.t.Errorf("%s (%s) did not exit within 15s of SIGTERM: killed", m.ID, filepath.Base(m.Bin))
	case code != 0 && m.upgraded:
		c.t.Errorf("%s on the current binary: exit status %d after SIGTERM, want 0", m.ID, code)
	}
}

// stopAll stops every node with SIGTERM, core followers first.
func (c *cluster) stopAll() {
	lead := c.leader()
	for _, m := range c.members {
		if m != lead {
			c.stop(m)
		}
	}
	c.stop(lead)
}

// caughtUp waits until m has applied the commit index the leader reports
// now.
func (c *cluster) caughtUp(m *member) {
	var commit uint64
	c.eventually("the leader's commit index", func() error {
		st, err := c.status(c.leader())
		commit = st.CommitIndex
		return err
	})
	c.eventually(fmt.Sprintf("%s applies index %d", m.ID, commit), func() error {
		st, err := c.status(m)
		if err == nil && st.AppliedIndex < commit {
			err = fmt.Errorf("applied %d", st.AppliedIndex)
		}
		return err
	})
}

// waitTraffic waits until the reader of m has read every file of every
// site through the new binary and a write was acknowledged since, so that
// each step of the upgrade ran under reads and writes.
func (c *cluster) waitTraffic(m *member, md *model) {
	reads := m.reads.Load()
	_, _, _, acks := md.writeDowntime()
	c.eventually(fmt.Sprintf("reads through %s and a write after its replacement", m.ID), func() error {
		_, _, _, now := md.writeDowntime()
		if got := m.reads.Load() - reads; got < int64(len(readSites)*len(sitePaths)) || now == acks {
			return fmt.Errorf("%d reads, %d writes acknowledged since", got, now-acks)
		}
		return nil
	})
}

// report logs the downtime the traffic saw and fails the test for every
// failed read.
func (c *cluster) report(md *model) {
	t := c.t
	gap, fails, worst, acks := md.writeDowntime()
	c.logf("writes: %d acknowledged, %d failed; longest time without an acknowledged write %s; longest write %s",
		acks, fails, gap.Round(time.Millisecond), worst.Round(time.Millisecond))
	for _, m := range c.members {
		c.logf("reads through %s: %d, %d failed while it was up", m.ID, m.reads.Load(), m.failed.Load())
		if m.failed.Load() > 0 {
			m.mu.Lock()
			t.Errorf("%d reads through %s failed while it was up; the first:\n%s", m.failed.Load(), m.ID, strings.Join(m.failures, "\n"))
			m.mu.Unlock()
		}
	}
}

// decodeError is the "error" of an API answer body, or the body itself.
func decodeError(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return string(body)
}
