package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/builder/client"
	"github.com/atoll-hosting/atoll/node/nodetest"
)

// BenchmarkEdgeColdMiss is the in-process twin of atoll-bench's cold-miss
// case: 3 core nodes and 1 edge, files of 16 KiB in a deploy that is not
// published (so the edge does not prefetch it), each requested through the
// edge's preview host twice. It reports the first (cold) and second (hot)
// request's p50 and their difference. Run with:
//
//	go test ./node -run '^$' -bench EdgeColdMiss -benchtime 200x
func BenchmarkEdgeColdMiss(b *testing.B) {
	c := nodetest.New(b, 3, 1)
	ctx := context.Background()
	cl := c.Client(c.Leader())
	if _, err := cl.CreateSite(ctx, "cold", nil, 0); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	for i := range b.N {
		body := make([]byte, 0, 16<<10)
		for len(body) < 16<<10 {
			body = append(body, fmt.Sprintf("cold miss content %d-%d\n", i, len(body))...)
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d.txt", i)), body[:16<<10], 0o644)
	}
	d, err := cl.DeployDir(ctx, dir, "cold", client.DeployOptions{})
	if err != nil {
		b.Fatal(err)
	}
	edge := c.Member("edge1")
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 1}}
	get := func(path string) (time.Duration, error) {
		req, _ := http.NewRequest("GET", edge.Node.EdgeURL()+path, nil)
		req.Host = d.ID + "--cold.localhost"
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != 16<<10 {
			return 0, fmt.Errorf("GET %s: %d, %d bytes", path, resp.StatusCode, n)
		}
		return time.Since(start), nil
	}
	c.Eventually(10*time.Second, "the edge knows the deploy", func() bool {
		_, err := get("/f000000.txt")
		return err == nil
	})
	cold := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 1; i < b.N; i++ {
		t, err := get(fmt.Sprintf("/f%06d.txt", i))
		if err != nil {
			b.Fatal(err)
		}
		cold = append(cold, t)
	}
	b.StopTimer()
	hot := make([]time.Duration, 0, b.N)
	for i := 1; i < b.N; i++ {
		t, err := get(fmt.Sprintf("/f%06d.txt", i))
		if err != nil {
			b.Fatal(err)
		}
		hot = append(hot, t)
	}
	if len(cold) == 0 {
		return
	}
	p50 := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds()) / 1000
	}
	c50, h50 := p50(cold), p50(hot)
	b.ReportMetric(c50, "cold-p50-ms")
	b.ReportMetric(h50, "hot-p50-ms")
	b.ReportMetric(c50-h50, "added-p50-ms")
}
