package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/atoll-hosting/atoll/atolltest"
)

// TestMetricsEndToEnd runs a core node (JSON logs, an access log, per-site
// labels) and an edge node, serves a site from both, and checks what an
// operator sees: /metrics counts the requests by status and outcome and the
// edge's fetches from the core (it prefetches the published deploy), per-site series only where asked for, hashicorp/raft's
// metrics, the certificate's expiry and the other node's reachability,
// also once it is killed; `atoll site stats` sums both nodes; every metric
// a node exports is in docs/METRICS.md and every metric the alerting rules
// and the dashboard read is exported, and raft's samples the page says are
// not bridged are absent; the access log has a JSON line per request and
// is reopened on SIGHUP; the logs are JSON.
func TestMetricsEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts two processes")
	}
	const key, token = "e2e-metrics-key", "e2e-metrics-admin"
	accessLog := filepath.Join(t.TempDir(), "access.log")
	core := atolltest.NewServer(t, atolltest.NodeConfig{ID: "core1", AdminToken: token, Bootstrap: true,
		Flags: []string{"--cluster-key", key, "--log-format", "json", "--access-log", accessLog, "--metrics-site-labels"}})
	core.Start()
	edge := atolltest.NewServer(t, atolltest.NodeConfig{ID: "edge1", AdminToken: token,
		Flags: []string{"--cluster-key", key, "--join", "http://" + core.APIAddr, "--role", "edge"}})
	edge.Start()

	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"index.html": "<h1>metrics</h1>"})
	core.MustCLI("site", "create", "blog", "--domain", "blog.example.com")
	core.MustCLI("deploy", dir, "--site", "blog")
	_, certPEM, keyPEM := siteCertificate(t, "blog.example.com")
	core.MustCLI("cert", "put", "--site", "blog", "--domain", "blog.example.com",
		"--cert", writeSecret(t, "c.pem", string(certPEM)), "--key", writeSecret(t, "k.pem", string(keyPEM)))

	for range 3 {
		if resp, body := core.Get("GET", "blog.localhost", "/"); resp.StatusCode != 200 {
			t.Fatalf("core GET /: %d %q", resp.StatusCode, body)
		}
	}
	for range 2 {
		if resp, body := edge.Get("GET", "blog.localhost", "/"); resp.StatusCode != 200 {
			t.Fatalf("edge GET /: %d %q", resp.StatusCode, body)
		}
	}
	if resp, _ := edge.Get("GET", "blog.localhost", "/nope"); resp.StatusCode != 404 {
		t.Fatalf("edge GET /nope: %d, want 404", resp.StatusCode)
	}

	// atoll site stats sums the two nodes' counters.
	out := core.MustCLI("site", "stats", "blog")
	if !strings.Contains(out, "site blog: 6 requests") || !strings.Contains(out, "(2 of 2 nodes answered)") {
		t.Errorf("site stats blog:\n%s\nwant 6 requests from 2 of 2 nodes", out)
	}

	// The cluster view (certificates, reachability) is refreshed after
	// the state changed; wait for it to include the certificate.
	coreM := scrapeUntil(t, core, func(m metricFamilies) bool {
		return m.value("atoll_tls_cert_expiry_timestamp_seconds", "domain", "blog.example.com") > 0 &&
			m.value("atoll_node_up", "node", "edge1") == 1
	})
	edgeM := scrape(t, edge)
	checks := []struct {
		name string
		got  float64
		want func(float64) bool
		what string
	}{
		{"core 2xx", coreM.sum("atoll_edge_requests_total", "code", "2xx"), eq(3), "3"},
		{"edge 2xx", edgeM.sum("atoll_edge_requests_total", "code", "2xx"), eq(2), "2"},
		{"edge 404", edgeM.sum("atoll_edge_requests_total", "outcome", "not_found"), eq(1), "1"},
		{"edge peer fetches", edgeM.sum("atoll_peer_fetches_total", "result", "ok"), atLeast(1), ">= 1"},
		{"core site series", coreM.value("atoll_site_requests_total", "site", "blog"), eq(3), "3"},
		{"edge site series (off)", float64(len(edgeM["atoll_site_requests_total"].GetMetric())), eq(0), "none"},
		{"core leads", coreM.value("atoll_raft_leader"), eq(1), "1"},
		{"raft's own metrics", float64(len(coreM["atoll_raft_state_leader"].GetMetric())), atLeast(1), "present"},
		{"edge latency samples", edgeM.histCount("atoll_edge_request_duration_seconds"), eq(3), "3"},
		{"published deploys", coreM.value("atoll_deploys", "state", "published"), eq(1), "1"},
	}
	for _, c := range checks {
		if !c.want(c.got) {
			t.Errorf("%s: %v, want %s", c.name, c.got, c.what)
		}
	}

	// The raft samples docs/METRICS.md says are not bridged are absent.
	for _, m := range []metricFamilies{coreM, edgeM} {
		for name := range m {
			for _, blocked := range []string{"atoll_raft_replication_", "atoll_raft_rpc_", "atoll_raft_net_", "atoll_raft_boltdb_",
				"atoll_raft_leader_dispatchLog", "atoll_raft_leader_dispatchNumLogs", "atoll_raft_fsm_enqueue", "atoll_raft_fsm_applyBatch"} {
				if strings.HasPrefix(name, blocked) {
					t.Errorf("metric %s is exported, but docs/METRICS.md says raft's samples %s* are not bridged", name, blocked)
				}
			}
		}
	}

	// Documentation and monitoring files agree with what nodes export.
	doc, err := os.ReadFile("../../docs/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []metricFamilies{coreM, edgeM} {
		for name := range m {
			if !documentedMetric(string(doc), name) {
				t.Errorf("metric %s is exported but not in docs/METRICS.md", name)
			}
		}
	}
	for name, where := range monitoringMetrics(t) {
		if !coreM.has(name) && !edgeM.has(name) {
			t.Errorf("%s read by %s: no node exports it", name, strings.Join(where, ", "))
		}
	}

	checkAccessLog(t, core, accessLog)
	checkJSONLogs(t, core)

	// A killed node shows as unreachable.
	edge.Kill(syscall.SIGKILL)
	scrapeUntil(t, core, func(m metricFamilies) bool { return m.value("atoll_node_up", "node", "edge1") == 0 })
}

// checkAccessLog waits for the core's 3 lines, then rotates the file the
// way logrotate does and checks the next request goes to the new file.
func checkAccessLog(t *testing.T, core *atolltest.Server, path string) {
	t.Helper()
	lines := waitLines(t, path, 3)
	for _, l := range lines {
		if l["site"] != "blog" || l["status"] != 200.0 || l["host"] != "blog.localhost" || l["path"] != "/" || l["deploy"] == "" {
			t.Errorf("access log line %v: want site blog, status 200, host blog.localhost, path /, a deploy", l)
		}
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := core.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The node reopens on its own time: request until a line lands in the
	// new file (the old one keeps the lines from before the reopen).
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		core.Get("GET", "blog.localhost", "/after-rotate")
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(`"path":"/after-rotate"`)) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no access log line in a new %s after SIGHUP", path)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitLines waits until path holds n JSON lines and returns them.
func waitLines(t *testing.T, path string, n int) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		var lines []map[string]any
		if f, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var l map[string]any
				if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
					t.Fatalf("access log line is not JSON: %v: %s", err, sc.Text())
				}
				lines = append(lines, l)
			}
			f.Close()
		}
		if len(lines) >= n {
			return lines
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %d lines, want %d", path, len(lines), n)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkJSONLogs checks that the node's log lines are JSON objects with
// the stable keys.
func checkJSONLogs(t *testing.T, s *atolltest.Server) {
	t.Helper()
	logs := 0
	for _, line := range strings.Split(s.Output(), "\n") {
		if strings.HasPrefix(line, "time=") {
			t.Errorf("a text log line with --log-format json: %s", line)
		}
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Errorf("log line is not JSON: %v: %s", err, line)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := l[k]; !ok {
				t.Errorf("log line lacks %q: %s", k, line)
			}
		}
		logs++
	}
	if logs == 0 {
		t.Errorf("no JSON log line in the node's output:\n%s", s.Output())
	}
}

// documentedMetric reports whether docs/METRICS.md lists name: in
// backquotes, or as the Go, process or hashicorp/raft families it
// describes by prefix.
func documentedMetric(doc, name string) bool {
	for _, prefix := range []string{"go_", "process_", "atoll_raft_"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return strings.Contains(doc, "`"+name+"`")
}

// metricFamilies is one scrape, by family name.
type metricFamilies map[string]*dto.MetricFamily

// has reports whether a PromQL name is in the scrape, a histogram's or a
// summary's _bucket, _sum and _count included.
func (m metricFamilies) has(name string) bool {
	if _, ok := m[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && m[base] != nil {
			return true
		}
	}
	return false
}

// matching returns the metrics of family name whose labels include the
// name/value pairs kv.
func (m metricFamilies) matching(name string, kv ...string) []*dto.Metric {
	var out []*dto.Metric
	mf := m[name]
metrics:
	for _, x := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range x.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if labels[kv[i]] != kv[i+1] {
				continue metrics
			}
		}
		out = append(out, x)
	}
	return out
}

func metricValue(x *dto.Metric) float64 {
	switch {
	case x.Counter != nil:
		return x.Counter.GetValue()
	case x.Gauge != nil:
		return x.Gauge.GetValue()
	case x.Untyped != nil:
		return x.Untyped.GetValue()
	}
	return 0
}

// sum adds the values of the matching metrics.
func (m metricFamilies) sum(name string, kv ...string) float64 {
	total := 0.0
	for _, x := range m.matching(name, kv...) {
		total += metricValue(x)
	}
	return total
}

// value is the single matching metric's value, -1 when there is none.
func (m metricFamilies) value(name string, kv ...string) float64 {
	xs := m.matching(name, kv...)
	if len(xs) != 1 {
		return -1
	}
	return metricValue(xs[0])
}

// histCount is the sample count of histogram name.
func (m metricFamilies) histCount(name string) float64 {
	total := 0.0
	for _, x := range m.matching(name) {
		total += float64(x.GetHistogram().GetSampleCount())
	}
	return total
}

func eq(want float64) func(float64) bool      { return func(v float64) bool { return v == want } }
func atLeast(want float64) func(float64) bool { return func(v float64) bool { return v >= want } }

// scrape reads s's /metrics, without a token.
func scrape(t *testing.T, s *atolltest.Server) metricFamilies {
	t.Helper()
	m, err := scrapeOnce(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func scrapeOnce(ctx context.Context, s *atolltest.Server) (metricFamilies, error) {
	status, body, err := s.Node.API(ctx, "GET", "/metrics", "", "", nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %d %s", status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		return nil, fmt.Errorf("/metrics does not parse: %v", err)
	}
	return mfs, nil
}

// scrapeUntil scrapes s until ok holds, for up to 30s.
func scrapeUntil(t *testing.T, s *atolltest.Server, ok func(metricFamilies) bool) metricFamilies {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var last metricFamilies
	for {
		m, err := scrapeOnce(ctx, s)
		if err == nil && ok(m) {
			return m
		}
		if m != nil {
			last = m
		}
		select {
		case <-ctx.Done():
			var names []string
			for n := range last {
				names = append(names, n)
			}
			sort.Strings(names)
			t.Fatalf("%s's /metrics never showed what was waited for (last error %v); families: %s", s.ID, err, strings.Join(names, " "))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
