package node_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/node/nodetest"
)

// TestCensusMetricsOnTheLeaderAlone: the repair census metrics are the
// census GET /v1/status shows, the current leader's. A node that led
// before keeps its last report, which the alerting rules (max over the
// nodes) would otherwise read for ever after a failover.
func TestCensusMetricsOnTheLeaderAlone(t *testing.T) {
	c := nodetest.New(t, 3, 0)
	const census = "\natoll_repair_census_timestamp_seconds "
	old := c.Leader()
	c.Eventually(20*time.Second, "the first leader's census in its /metrics", func() bool {
		return strings.Contains(metricsText(t, old), census)
	})
	if err := old.Node.Store().LeadershipTransfer(); err != nil {
		t.Fatal(err)
	}
	var leader *nodetest.Member
	c.Eventually(20*time.Second, "another leader", func() bool {
		leader = c.Leader()
		return leader != old && !old.Node.Store().IsLeader()
	})
	c.Eventually(20*time.Second, "the new leader's census in its /metrics", func() bool {
		return strings.Contains(metricsText(t, leader), census)
	})
	for _, m := range c.Running() {
		if has := strings.Contains(metricsText(t, m), census); has != (m == leader) {
			t.Errorf("%s (leader %v) exports a census: %v; want only the leader, %s", m.Cfg.ID, m == leader, has, leader.Cfg.ID)
		}
	}
}

// metricsText is m's /metrics.
func metricsText(t *testing.T, m *nodetest.Member) string {
	t.Helper()
	resp, err := http.Get(m.Node.APIURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics of %s: %d %v", m.Cfg.ID, resp.StatusCode, err)
	}
	return string(b)
}
