package upgrade

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
)

// sitePaths are the files of every deploy; each version has its own
// content for each of them.
var sitePaths = []string{"/", "/about.html", "/p/1.html", "/p/2.html"}

// content is a site's version n: URL path -> body.
func content(site string, n int) map[string]string {
	files := make(map[string]string, len(sitePaths))
	for _, p := range sitePaths {
		files[p] = fmt.Sprintf("<p>%s v%d %s</p>", site, n, p)
	}
	return files
}

// tarOf is the archive of files (URL path -> body); "/" is index.html.
func tarOf(files map[string]string) []byte {
	named := make(map[string]string, len(files))
	for p, body := range files {
		name := p[1:]
		if p == "/" {
			name = "index.html"
		}
		named[name] = body
	}
	return atolltest.Tar(named)
}

// version is one deploy the writer attempted.
type version struct {
	n          int
	id         string // "" until the deploy was acknowledged
	deployAck  bool   // 201: the deploy is stored
	publishTry bool   // a publish was attempted (with the deploy or after it)
	publishAck bool   // the publish was acknowledged
}

// model is what the writer attempted and what the cluster acknowledged,
// per site; readers accept any version attempted so far (a node may lag
// behind a publish, never serve what was never deployed).
type model struct {
	mu    sync.Mutex
	sites map[string][]*version // oldest first
	acks  []time.Time           // when each write was acknowledged
	fails int                   // write attempts that failed
	worst time.Duration         // the longest write attempt
}

func newModel(sites []string) *model {
	m := &model{sites: map[string][]*version{}}
	for _, s := range sites {
		m.sites[s] = nil
	}
	return m
}

// attempt registers the next version of site before it is sent, so a
// reader that sees it early accepts it; publish says the upload publishes.
func (m *model) attempt(site string, publish bool) *version {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := &version{n: len(m.sites[site]) + 1, publishTry: publish}
	m.sites[site] = append(m.sites[site], v)
	return v
}

// record notes the end of one write attempt.
func (m *model) record(start time.Time, ok bool, set func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.worst = max(m.worst, now.Sub(start))
	if !ok {
		m.fails++
		return
	}
	set()
	m.acks = append(m.acks, now)
}

// served reports whether body is path's content in some attempted
// version of site.
func (m *model) served(site, path, body string) bool {
	m.mu.Lock()
	n := len(m.sites[site])
	m.mu.Unlock()
	for i := 1; i <= n; i++ {
		if content(site, i)[path] == body {
			return true
		}
	}
	return false
}

// expected is the versions site may be serving once writes stopped: the
// last acknowledged publish, and any later one whose publish was
// attempted but not acknowledged (it may have been applied).
func (m *model) expected(site string) []*version {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*version
	for _, v := range slices.Backward(m.sites[site]) {
		if v.publishAck {
			return append(out, v)
		}
		if v.publishTry {
			out = append(out, v)
		}
	}
	return out
}

// acked is site's acknowledged deploys.
func (m *model) acked(site string) []*version {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*version
	for _, v := range m.sites[site] {
		if v.deployAck {
			out = append(out, v)
		}
	}
	return out
}

// writeDowntime is the longest time without an acknowledged write, the
// number of failed attempts and the longest attempt.
func (m *model) writeDowntime() (gap time.Duration, fails int, worst time.Duration, acks int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := 1; i < len(m.acks); i++ {
		gap = max(gap, m.acks[i].Sub(m.acks[i-1]))
	}
	return gap, m.fails, m.worst, len(m.acks)
}

// member is one node of the cluster with what the traffic saw of it. The
// gate keeps a request and the node's replacement apart: every request
// through the node holds it shared, and a replacement takes it exclusive
// to mark the node down, so no counted request is in flight when the
// SIGTERM is sent (as a load balancer drains a backend before it is
// stopped). From then until the new binary is ready no request goes to it.
type member struct {
	*atolltest.Server
	gate     sync.RWMutex
	up       bool
	upgraded bool // runs the current binary

	reads, failed atomic.Int64
	mu            sync.Mutex
	failures      []string // the first few failed reads
}

// use runs fn with the member's gate held shared if the member is up,
// and reports whether it was.
func (m *member) use(fn func()) bool {
	m.gate.RLock()
	defer m.gate.RUnlock()
	if !m.up {
		return false
	}
	fn()
	return true
}

// setUp marks the member up or down, waiting for requests in flight.
func (m *member) setUp(up bool) {
	m.gate.Lock()
	m.up = up
	m.gate.Unlock()
}

func (m *member) fail(format string, args ...any) {
	m.failed.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.failures) < 10 {
		m.failures = append(m.failures, fmt.Sprintf(format, args...))
	}
}

// read fetches every path of every site through m's edge while m is up,
// until ctx ends; each answer must be 200 with the content of a version
// the writer attempted.
func read(ctx context.Context, m *member, md *model, sites []string) {
	for i := 0; ctx.Err() == nil; i++ {
		site, path := sites[i%len(sites)], sitePaths[(i/len(sites))%len(sitePaths)]
		if !m.use(func() { readOnce(ctx, m, md, site, path) }) {
			idle(ctx)
		}
	}
}

func readOnce(ctx context.Context, m *member, md *model, site, path string) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, body, err := m.Fetch(rctx, "GET", site+".localhost", path)
	if ctx.Err() != nil {
		return // the test is over; the request was cut, not failed
	}
	m.reads.Add(1)
	switch {
	case err != nil:
		m.fail("%s %s%s: %v", m.ID, site, path, err)
	case resp.StatusCode != http.StatusOK:
		m.fail("%s %s%s: %d %q", m.ID, site, path, resp.StatusCode, body)
	case !md.served(site, path, string(body)):
		m.fail("%s %s%s: %q is no version ever deployed", m.ID, site, path, body)
	}
}

// idle waits a little before a loop looks again at a member that is down.
func idle(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(20 * time.Millisecond):
	}
}

// write deploys new versions of the sites in turn until ctx ends, each
// through the next member that is up (cores and edge), publishing with
// the upload two times in three and with a separate publish call the
// third. A failed attempt is counted; the writer goes on with the next.
func write(ctx context.Context, members []*member, md *model, sites []string, token string) {
	for i := 0; ctx.Err() == nil; i++ {
		m := members[i%len(members)]
		site := sites[i%len(sites)]
		if !m.use(func() { writeOnce(ctx, m, md, site, token, i%3 == 2) }) {
			idle(ctx)
		}
	}
}

func writeOnce(ctx context.Context, m *member, md *model, site, token string, separate bool) {
	v := md.attempt(site, !separate)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	path := "/v1/sites/" + site + "/deploys?publish=true"
	if separate {
		path = "/v1/sites/" + site + "/deploys"
	}
	start := time.Now()
	var d atoll.DeployResponse
	status, body, err := m.Node.API(wctx, "POST", path, token, "application/x-tar", bytes.NewReader(tarOf(content(site, v.n))))
	if ctx.Err() != nil {
		return // the test is over: neither acknowledged nor failed
	}
	ok := err == nil && status == http.StatusCreated && json.Unmarshal(body, &d) == nil
	md.record(start, ok, func() { v.id, v.deployAck, v.publishAck = d.ID, true, !separate })
	if !ok || !separate {
		return
	}
	start = time.Now()
	md.mu.Lock()
	v.publishTry = true
	md.mu.Unlock()
	status, _, err = m.Node.API(wctx, "POST", "/v1/deploys/"+d.ID+"/publish", token, "", nil)
	if ctx.Err() != nil {
		return
	}
	md.record(start, err == nil && status == http.StatusOK, func() { v.publishAck = true })
}
