package upgrade

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
)

// httpsOnly is the update that needs feature level 2.
const httpsOnly = `{"https_only":true}`

// checkRefused checks, through via (on the new binary), that --https-only
// is refused while old members run the old binary: 409 naming each of
// them, through the API every time and through the CLI (one line on
// stderr) the first time; each old member refuses it as malformed (400);
// /v1/status says the cluster is at the base level, held back by them;
// the site is unchanged.
func (c *cluster) checkRefused(via *member, old []*member) {
	t := c.t
	var ids []string
	for _, o := range old {
		ids = append(ids, o.ID)
	}
	// The refusal follows from the level in the replicated state at once;
	// which nodes hold it back comes from the versions the nodes report,
	// which the answering node may learn a moment after a restart.
	var answer string
	err := c.wait("--https-only refused naming "+strings.Join(ids, ", "), func() error {
		status, body, err := via.Node.API(t.Context(), "PATCH", "/v1/sites/"+secureSite, adminToken, "application/json", strings.NewReader(httpsOnly))
		if err != nil {
			return err
		}
		answer = fmt.Sprintf("%d %s", status, strings.TrimSpace(string(body)))
		if status != http.StatusConflict {
			return errStop{fmt.Errorf("answer %s, want 409", answer)}
		}
		return namesAll(decodeError(body), ids)
	})
	if err != nil {
		t.Errorf("PATCH %s through %s while %s run the old binary: %v", httpsOnly, via.ID, strings.Join(ids, ", "), err)
	}
	if st, err := c.status(via); err != nil {
		t.Errorf("status through %s: %v", via.ID, err)
	} else if st.FeatureLevel != atoll.LevelBase || namesAll(strings.Join(st.FeatureHeldBy, ", "), ids) != nil {
		t.Errorf("status through %s while %s run the old binary: feature_level %d held by %q, want %d held by them",
			via.ID, strings.Join(ids, ", "), st.FeatureLevel, st.FeatureHeldBy, atoll.LevelBase)
	}
	// A node of the old binary does not know the field: it must refuse the
	// request, not answer 200 having changed nothing.
	for _, o := range old {
		o.use(func() {
			status, body, err := o.Node.API(t.Context(), "PATCH", "/v1/sites/"+secureSite, adminToken, "application/json", strings.NewReader(httpsOnly))
			if err != nil || status != http.StatusBadRequest {
				t.Errorf("PATCH %s through %s, on the old binary: %d %s %v, want 400", httpsOnly, o.ID, status, body, err)
			}
		})
	}
	if c.refusals == 0 {
		_, errOut, code := via.CLIAs(adminToken, "site", "update", secureSite, "--https-only")
		if lines := strings.Count(strings.TrimRight(errOut, "\n"), "\n") + 1; code == 0 || lines != 1 || namesAll(errOut, ids) != nil {
			t.Errorf("atoll site update %s --https-only through %s: exit %d, stderr %q; want a failure, one line naming %s",
				secureSite, via.ID, code, errOut, strings.Join(ids, ", "))
		}
	}
	c.refusals++
	if site := c.site(via, secureSite); site.HTTPSOnly {
		t.Errorf("site %s through %s has https_only set while %s run the old binary", secureSite, via.ID, strings.Join(ids, ", "))
	}
	c.logf("--https-only through %s refused: %s", via.ID, answer)
}

// namesAll is nil if msg names every one of ids.
func namesAll(msg string, ids []string) error {
	for _, id := range ids {
		if !strings.Contains(msg, id) {
			return fmt.Errorf("%q does not name %s", msg, id)
		}
	}
	return nil
}

// site is GET /v1/sites/NAME through m.
func (c *cluster) site(m *member, name string) atoll.Site {
	c.t.Helper()
	var s atoll.Site
	if err := m.Call(c.t.Context(), "GET", "/v1/sites/"+name, nil, &s); err != nil {
		c.t.Fatalf("site %s through %s: %v", name, m.ID, err)
	}
	return s
}

// checkFeatureLevel waits until the leader raised the cluster's feature
// level to the highest this binary knows, then checks that /v1/nodes shows
// every node on the new version and level, and that --https-only is
// accepted through the CLI and applied by every node (its edge answers
// plain HTTP with 308 to HTTPS).
func (c *cluster) checkFeatureLevel() {
	t := c.t
	lead := c.leader()
	var st atoll.Status
	err := c.wait("feature level raised", func() error {
		var err error
		if st, err = c.status(lead); err == nil && st.FeatureLevel < atoll.MaxFeatureLevel {
			err = fmt.Errorf("feature_level %d, held by %q", st.FeatureLevel, st.FeatureHeldBy)
		}
		return err
	})
	if err != nil {
		t.Errorf("every node runs the new binary, but the cluster's feature level was not raised to %d: %v", atoll.MaxFeatureLevel, err)
		return
	}
	c.logf("feature level %d", st.FeatureLevel)
	var nodes atoll.NodeList
	if err := lead.Call(t.Context(), "GET", "/v1/nodes", nil, &nodes); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Nodes {
		if n.Version != c.newVersion && !strings.HasPrefix(n.Version, c.newVersion+"+") || n.FeatureLevel != atoll.MaxFeatureLevel {
			t.Errorf("/v1/nodes: %s at version %q level %d, want %q (+commit) level %d", n.ID, n.Version, n.FeatureLevel, c.newVersion, atoll.MaxFeatureLevel)
		}
	}
	if len(nodes.Nodes) != len(c.members) {
		t.Errorf("/v1/nodes lists %d nodes, want %d", len(nodes.Nodes), len(c.members))
	}
	if _, errOut, code := lead.CLIAs(adminToken, "site", "update", secureSite, "--https-only"); code != 0 {
		t.Errorf("atoll site update %s --https-only at feature level %d: exit %d: %s", secureSite, st.FeatureLevel, code, errOut)
		return
	}
	for _, m := range c.members {
		err := c.wait(m.ID+" redirects to https", func() error {
			resp, body, err := m.Fetch(t.Context(), "GET", secureSite+".localhost", "/")
			if err == nil && (resp.StatusCode != http.StatusPermanentRedirect || !strings.HasPrefix(resp.Header.Get("Location"), "https://")) {
				err = fmt.Errorf("%d %q Location %q", resp.StatusCode, body, resp.Header.Get("Location"))
			}
			return err
		})
		if err != nil {
			t.Errorf("plain HTTP to https-only site %s through %s: %v, want 308 to https://", secureSite, m.ID, err)
		}
	}
	c.logf("--https-only accepted and applied by every node")
}

// checkOldBinaryRefuses stops a core follower, starts the old binary on its
// data dir with the same flags, and checks that it exits non-zero with one
// line and leaves every file as it was; then the new binary runs there
// again.
func (c *cluster) checkOldBinaryRefuses() {
	t := c.t
	lead := c.leader()
	var m *member
	for _, x := range c.members {
		if x != lead && !strings.HasPrefix(x.ID, "edge") {
			m = x
			break
		}
	}
	m.setUp(false)
	c.stop(m)
	before, err := atolltest.Listing(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.NodeConfig
	cfg.Bin, cfg.LogPath, cfg.APIClient, cfg.EdgeClient = c.oldBin, "", nil, nil
	old, err := atolltest.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Launch(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-old.Done():
	case <-time.After(60 * time.Second):
		old.Stop(syscall.SIGKILL, 5*time.Second)
		t.Errorf("the old binary still ran 60s after it started on %s's upgraded data dir", m.ID)
	}
	out := old.Output()
	line := errorLines(out)
	if code := old.ExitCode(); code <= 0 || len(line) != 1 || !strings.HasPrefix(line[0], "atoll: ") {
		t.Errorf("the old binary on %s's upgraded data dir: exit status %d (-1: killed), output:\n%s\nwant a non-zero exit and one line \"atoll: ...\"", m.ID, code, out)
	}
	after, err := atolltest.Listing(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := diffListings(before, after); diff != "" {
		t.Errorf("the old binary changed %s's data dir:\n%s", m.ID, diff)
	}
	c.logf("the old binary on %s's data dir: exit status %d: %s", m.ID, old.ExitCode(), strings.Join(line, " | "))
	m.Start()
	c.caughtUp(m)
	m.setUp(true)
}

// errorLines is what a binary printed other than log records (lines of
// key=value pairs that start with time=): the error line `atoll` prints
// when it exits non-zero, and anything unexpected. A failed start logs as
// it closes what it opened; those records are not part of the error.
func errorLines(out string) []string {
	var lines []string
	for l := range strings.Lines(out) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "time=") {
			lines = append(lines, l)
		}
	}
	return lines
}

// diffListings is the lines of atolltest.Listing that only one of a and
// b has, each marked - (only a) or + (only b); "" if they are equal.
func diffListings(a, b string) string {
	inA, inB := lineSet(a), lineSet(b)
	var out []string
	for _, l := range slices.Sorted(maps.Keys(inA)) {
		if !inB[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range slices.Sorted(maps.Keys(inB)) {
		if !inA[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

func lineSet(s string) map[string]bool {
	set := map[string]bool{}
	for l := range strings.Lines(s) {
		set[strings.TrimSuffix(l, "\n")] = true
	}
	return set
}

// checkServed checks, once every node applied what the leader committed,
// that every site is served byte-exact through every node at the version
// the writer last published (or a later one whose publish failed without
// an answer), and that every node lists every acknowledged deploy.
func (c *cluster) checkServed(md *model) {
	t := c.t
	for _, m := range c.members {
		c.caughtUp(m)
	}
	lead := c.leader()
	for _, s := range readSites {
		published := c.site(lead, s).Published
		var v *version
		for _, e := range md.expected(s) {
			if e.id == published || e.id == "" && served(t.Context(), lead, s, content(s, e.n)) == nil {
				v = e
				break
			}
		}
		if v == nil {
			t.Errorf("site %s publishes %s, which is neither the last acknowledged publish nor a later attempted one", s, published)
			continue
		}
		for _, m := range c.members {
			if err := served(t.Context(), m, s, content(s, v.n)); err != nil {
				t.Errorf("after the upgrade: %v", err)
			}
			c.checkDeploys(m, s, md.acked(s))
		}
	}
	c.logf("every site served byte-exact through every node; every acknowledged deploy kept")
}

// checkDeploys checks that m lists each of acked among site's deploys, in
// a state that keeps its files.
func (c *cluster) checkDeploys(m *member, site string, acked []*version) {
	var list atoll.DeployList
	if err := m.Call(c.t.Context(), "GET", "/v1/sites/"+site+"/deploys", nil, &list); err != nil {
		c.t.Fatal(err)
	}
	state := map[string]atoll.DeployState{}
	for _, d := range list.Deploys {
		state[d.ID] = d.State
	}
	for _, v := range acked {
		switch state[v.id] {
		case atoll.StateReady, atoll.StatePublished, atoll.StateSuperseded:
		default:
			c.t.Errorf("acknowledged deploy %s (version %d of %s) through %s: state %q", v.id, v.n, site, m.ID, state[v.id])
		}
	}
}

// errStop ends a wait at once with its error.
type errStop struct{ error }

// wait retries check until it passes, for up to 60s, or until it returns
// an errStop, and returns the last error then.
func (c *cluster) wait(what string, check func() error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if _, stop := err.(errStop); stop || time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", what, err)
		}
		select {
		case <-c.t.Context().Done():
			return c.t.Context().Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// eventually is wait that fails the test.
func (c *cluster) eventually(what string, check func() error) {
	c.t.Helper()
	if err := c.wait(what, check); err != nil {
		c.t.Fatal(err)
	}
}
