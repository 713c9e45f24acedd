package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

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
// shows as unreachable within 5 s; a new deploy appears. The last
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

	lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
	defer lcancel()
	if err := chromedp.Do(lctx,
		chromedp.Navigate(core1.APIURL()+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#login button")), // a real click fires the submit event
		chromedp.WaitVisible(chromedp.CSS("#page")),
	); err != nil {
		t.Fatalf("log in on the status page: %v\npage text:\n%s", err, pageText(t, ctx, "body"))
	}
	leader := leaderOf(t, core1, cores)
	waitPage(t, ctx, 30*time.Second, "three nodes and the leader",
		`document.querySelectorAll("#nodes tbody tr").length === 3 &&
		 document.querySelector("#nodes tr[data-node=`+leader.ID+`] td").textContent.includes("(leader)") &&
		 document.querySelectorAll("#nodes .bad.state").length === 0`)
	if strings.Contains(pageText(t, ctx, "#token"), token) {
		t.Error("the token input still holds the token")
	}

	// Kill a follower other than the page's node: within 5 s the page says
	// it is unreachable.
	var victim *atolltest.Server
	for _, s := range cores {
		if s != leader && s != core1 {
			victim = s
		}
	}
	victim.Kill(syscall.SIGKILL)
	waitPage(t, ctx, 5*time.Second, victim.ID+" unreachable",
		`document.querySelector("#nodes tr[data-node=`+victim.ID+`] .state").textContent.startsWith("unreachable")`)

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
