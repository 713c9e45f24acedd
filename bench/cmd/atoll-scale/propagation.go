package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/bench/benchkit"
)

// measurePropagation publishes two deploys of site "prop" alternately
// and times until every node's edge serves the one just published.
func measurePropagation(ctx context.Context, cfg config, c *benchkit.Cluster, r *result) error {
	leader := c.Core[0]
	if err := leader.Call(ctx, "POST", "/v1/sites", strings.NewReader(`{"name":"prop"}`), nil); err != nil {
		return err
	}
	ids := map[string]string{}
	for _, v := range []string{"A", "B"} {
		body := []byte("version " + v + "\n")
		h := atolltest.SHA256Hex(body)
		if err := leader.Call(ctx, "PUT", "/v1/blobs/"+h, bytes.NewReader(body), nil); err != nil {
			return err
		}
		var d struct {
			ID string `json:"id"`
		}
		m := fmt.Sprintf(`{"files":{"/probe.txt":%q}}`, h)
		if err := leader.Call(ctx, "POST", "/v1/sites/prop/deploys", strings.NewReader(m), &d); err != nil {
			return err
		}
		ids[v] = d.ID
	}
	nodes := c.All()
	var worst []float64
	for i := range cfg.propagRuns {
		v := []string{"A", "B"}[i%2]
		_, w, err := benchkit.PublishSeen(ctx, leader, nodes, ids[v], "?rollback=true", "prop.localhost", "/probe.txt", "version "+v+"\n", 10*time.Second)
		if err != nil {
			return err
		}
		worst = append(worst, benchkit.Ms(w))
	}
	r.PropagationP50Ms, r.PropagationP99Ms = benchkit.Percentile(worst, 50), benchkit.Percentile(worst, 99)
	log.Printf("publish visible on all %d nodes: p50 %.1f ms, p99 %.1f ms over %d publishes", len(nodes), r.PropagationP50Ms, r.PropagationP99Ms, len(worst))
	return nil
}
