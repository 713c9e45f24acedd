package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
)

// chromiumPath finds Debian's chromium (which .ci/run installs) or another
// Chrome.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestStatusPageInBrowser runs three real core nodes and drives the status
// page (/ui/) in headless Chromium: after the admin token is entered it
// shows three nodes and the leader, without a console error; a killed node
// shows as unreachable within 5 s; a new deploy appears. With all nodes up
// and again with one killed, the page, `atoll status -o json` and the
// nodes' /metrics say the same of the cluster (viewsAgree). The last
// screenshot is saved as status-page.png in the test's temp dir (logged).
func TestStatusPageInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes and a browser")
	}
	chrome := chromiumPath()
	if chrome == "" {
		t.Log("##########################################################################")
		t.Log("SKIPPED: no chromium on this machine: the status page is NOT tested.")
		t.Log("Install Debian's chromium package (.ci/run does: apt-get install chromium).")
		t.Log("##########################################################################")
		t.Skip("chromium is not installed")
	}
	const key, token = "e2e-ui-key", "e2e-ui-admin"
	mk := func(id string, flags ...string) *atolltest.Server {
		return atolltest.NewServer(t, atolltest.NodeConfig{ID: id, AdminToken: token, Flags: append([]string{"--cluster-key", key}, flags...)})
	}
	core1 := mk("core1")
	core1.Bootstrap = true
	core1.Start()
	cores := []*atolltest.Server{core1}
	for _, id := range []string{"core2", "core3"} {
		s := mk(id, "--join", "http://"+core1.APIAddr)
		s.Start()
		cores = append(cores, s)
	}
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"index.html": "<h1>one</h1>"})
	core1.MustCLI("site", "create", "blog")
	core1.MustCLI("deploy", dir, "--site", "blog")

	ctx, cancel := chromeContext(t, chrome)
	defer cancel()
	var mu sync.Mutex
	var consoleErrors []string
	if err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				mu.Lock()
				consoleErrors = append(consoleErrors, fmt.Sprintf("console.error: %d args", len(e.Args)))
				mu.Unlock()
			}
		case *runtime.EventExceptionThrown:
			mu.Lock()
			consoleErrors = append(consoleErrors, "exception: "+e.ExceptionDetails.Text)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.TempDir(), "status-page.png")
	defer func() {
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(90)); err == nil && os.WriteFile(shot, png, 0o644) == nil {
			t.Logf("screenshot of the status page: %s", shot)
		}
	}()

	// The page is the leader's, so that the page, status and the census
	// metrics are all one node's view.
	leader := leaderOf(t, core1, cores)
	lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
	defer lcancel()
	if err := chromedp.Do(lctx,
		chromedp.Navigate(leader.APIURL()+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#login button")), // a real click fires the submit event
		chromedp.WaitVisible(chromedp.CSS("#page")),
	); err != nil {
		t.Fatalf("log in on the status page: %v\npage text:\n%s", err, pageText(t, ctx, "body"))
	}
	waitPage(t, ctx, 30*time.Second, "three nodes and the leader",
		`document.querySelectorAll("#nodes tbody tr").length === 3 &&
		 document.querySelector("#nodes tr[data-node=`+leader.ID+`] td").textContent.includes("(leader)") &&
		 document.querySelectorAll("#nodes .bad.state").length === 0`)
	if strings.Contains(pageText(t, ctx, "#token"), token) {
		t.Error("the token input still holds the token")
	}

	viewsAgree(t, ctx, leader, cores)

	// Kill a follower (the page is the leader's): within 5 s the page says
	// it is unreachable.
	var victim *atolltest.Server
	for _, s := range cores {
		if s != leader {
			victim = s
		}
	}
	victim.Kill(syscall.SIGKILL)
	waitPage(t, ctx, 5*time.Second, victim.ID+" unreachable",
		`document.querySelector("#nodes tr[data-node=`+victim.ID+`] .state").textContent.startsWith("unreachable")`)
	viewsAgree(t, ctx, leader, slices.DeleteFunc(slices.Clone(cores), func(s *atolltest.Server) bool { return s == victim }))

	// A new deploy shows.
	writeTree(t, dir, map[string]string{"index.html": "<h1>two</h1>"})
	id := deployID(t, core1.MustCLI("deploy", dir, "--site", "blog"))
	waitPage(t, ctx, 30*time.Second, "deploy "+id,
		`document.querySelector("#deploys tbody").textContent.includes("`+id+`") &&
		 document.querySelector("#sites tbody").textContent.includes("`+id+`")`)

	mu.Lock()
	defer mu.Unlock()
	if len(consoleErrors) > 0 {
		t.Errorf("console errors on the status page: %v", consoleErrors)
	}
}

// chromeContext starts headless Chromium at path for the test.
func chromeContext(t *testing.T, path string) (context.Context, context.CancelFunc) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(900, 1400),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, acancel := chromedp.NewExecAllocator(t.Context(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	return ctx, func() { cancel(); acancel() }
}

// waitPage waits up to limit for the JavaScript predicate to hold.
func waitPage(t *testing.T, ctx context.Context, limit time.Duration, what, predicate string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(limit))); err != nil {
		t.Fatalf("the status page did not show %s within %s: %v\npage text:\n%s", what, limit, err, pageText(t, ctx, "body"))
	}
}

// pageText returns the text (or, for an input, the value) of sel.
func pageText(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(e => e.value !== undefined ? e.value : e.innerText)(document.querySelector("`+sel+`"))`))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return s
}

// clusterSays is what one of the status page, `atoll status` and /metrics
// says of the cluster: the leader, the sites, the last census's
// under-replicated and missing blobs (-1 without a census), and per node
// whether it answers and its lag (-1 when unknown).
type clusterSays struct {
	Leader                   string
	Sites                    int
	UnderReplicated, Missing int
	Nodes                    map[string]nodeSays
}

type nodeSays struct {
	Up  bool
	Lag int64
}

// viewsAgree waits up to 30 s for the status page (served by leader),
// `atoll status -o json` asked of leader and /metrics (the node table and
// census of leader, atoll_raft_leader of every live node) to say the same
// of the cluster, and fails naming what differs. The three are read at
// slightly different moments and the page and the metrics refresh on
// their own time (2 s; on each change and every 10 s): the wait is for a
// moment where they have all caught up, not for a verdict.
func viewsAgree(t *testing.T, ctx context.Context, leader *atolltest.Server, live []*atolltest.Server) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		page, pageErr := pageSays(ctx)
		status, statusErr := statusSays(leader)
		metrics, metricsErr := metricsSays(ctx, leader, live)
		err := errors.Join(pageErr, statusErr, metricsErr)
		if err == nil && reflect.DeepEqual(page, status) && reflect.DeepEqual(status, metrics) {
			if len(status.Nodes) != 3 || status.Leader != leader.ID || status.UnderReplicated < 0 {
				t.Errorf("the three agree, but on %+v: want 3 nodes, leader %s and a census", status, leader.ID)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the status page, atoll status and /metrics disagree (errors: %v):\npage:    %+v\nstatus:  %+v\nmetrics: %+v", err, page, status, metrics)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pageSays reads the status page's node table, summary and census line.
func pageSays(ctx context.Context) (clusterSays, error) {
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		summary: document.querySelector("#summary").textContent,
		repair: document.querySelector("#repair").textContent,
		rows: [...document.querySelectorAll("#nodes tbody tr")].map(tr => [tr.dataset.node, ...[...tr.cells].map(td => td.textContent)])})`))
	if err != nil {
		return clusterSays{}, err
	}
	var p struct {
		Summary, Repair string
		Rows            [][]string
	}
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return clusterSays{}, err
	}
	says := clusterSays{Sites: -1, UnderReplicated: -1, Missing: -1, Nodes: map[string]nodeSays{}}
	if m := regexp.MustCompile(`; (\d+) sites$`).FindStringSubmatch(p.Summary); m != nil {
		says.Sites, _ = strconv.Atoi(m[1])
	}
	if m := regexp.MustCompile(`(\d+) under-replicated, (\d+) missing`).FindStringSubmatch(p.Repair); m != nil {
		says.UnderReplicated, _ = strconv.Atoi(m[1])
		says.Missing, _ = strconv.Atoi(m[2])
	}
	for _, r := range p.Rows { // data-node, node, role, state, lag, ...
		if len(r) < 5 {
			return says, fmt.Errorf("node row %q: too few cells", r)
		}
		if strings.HasSuffix(r[1], " (leader)") {
			says.Leader = r[0]
		}
		lag, err := strconv.ParseInt(r[4], 10, 64)
		if r[4] == "?" {
			lag, err = -1, nil
		}
		if err != nil {
			return says, fmt.Errorf("node %s's lag %q: %v", r[0], r[4], err)
		}
		says.Nodes[r[0]] = nodeSays{Up: !strings.HasPrefix(r[3], "unreachable"), Lag: lag}
	}
	return says, nil
}

// statusSays reads `atoll status -o json` asked of s (which exits non-zero
// when a node is down: only its output matters here).
func statusSays(s *atolltest.Server) (clusterSays, error) {
	out, errOut, _ := s.CLI("status", "-o", "json")
	var st atoll.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return clusterSays{}, fmt.Errorf("atoll status -o json: %v: %s%s", err, out, errOut)
	}
	says := clusterSays{Leader: st.LeaderID, Sites: st.Sites, UnderReplicated: -1, Missing: -1, Nodes: map[string]nodeSays{}}
	if r := st.Repair; r != nil {
		says.UnderReplicated, says.Missing = r.UnderReplicated, r.Missing
	}
	for _, n := range st.Nodes {
		says.Nodes[n.ID] = nodeSays{Up: n.RaftState != "unreachable", Lag: n.Lag}
	}
	return says, nil
}

// metricsSays reads s's /metrics for the node table and the sites, and
// every live node's for which one leads and for the census, read as the
// alerting rules and the dashboard do: the max over the nodes.
func metricsSays(ctx context.Context, s *atolltest.Server, live []*atolltest.Server) (clusterSays, error) {
	m, err := scrapeOnce(ctx, s)
	if err != nil {
		return clusterSays{}, err
	}
	says := clusterSays{Sites: int(m.value("atoll_sites")), UnderReplicated: -1, Missing: -1, Nodes: map[string]nodeSays{}}
	for _, x := range m.matching("atoll_node_up") {
		id := x.GetLabel()[0].GetValue()
		says.Nodes[id] = nodeSays{Up: metricValue(x) == 1, Lag: int64(m.value("atoll_node_lag_entries", "node", id))}
	}
	for _, l := range live {
		lm, err := scrapeOnce(ctx, l)
		if err != nil {
			return says, err
		}
		if lm.value("atoll_raft_leader") == 1 {
			says.Leader = l.ID
		}
		if lm.has("atoll_repair_census_timestamp_seconds") {
			says.UnderReplicated = max(says.UnderReplicated, int(lm.value("atoll_repair_under_replicated_blobs")))
			says.Missing = max(says.Missing, int(lm.value("atoll_repair_missing_blobs")))
		}
	}
	return says, nil
}
