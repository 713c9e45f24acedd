package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/atoll-hosting/atoll/atolltest"
)

// pool is the blobs every site's files point at: small, distinct,
// uploaded once.
type pool struct{ hashes []string }

// blobBody is blob i of the pool: a small HTML page, 200 B to ~2 KiB.
func blobBody(i int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "<!doctype html><title>scale %d</title>\n", i)
	for j := range i % 40 {
		fmt.Fprintf(&b, "<p>paragraph %d of page %d</p>\n", j, i)
	}
	return []byte(b.String())
}

// uploadPool uploads n blobs through the API of the given nodes (round
// robin), 16 at a time.
func uploadPool(ctx context.Context, nodes []*atolltest.Node, n int) (*pool, error) {
	p := &pool{hashes: make([]string, n)}
	var g errgroup.Group
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			b := blobBody(i)
			sum := sha256.Sum256(b)
			p.hashes[i] = hex.EncodeToString(sum[:])
			return nodes[i%len(nodes)].Call(ctx, "PUT", "/v1/blobs/"+p.hashes[i], bytes.NewReader(b), nil)
		})
	}
	return p, g.Wait()
}

// indexPage is the body of site i's index page, for a pool of poolSize.
func indexPage(i, poolSize int) []byte { return blobBody(blobOf(i, 0, poolSize)) }

// siteName is the name of generated site i.
func siteName(i int) string { return fmt.Sprintf("s%06d", i) }

// sitePath is file j of a generated site; file 0 is the index page.
func sitePath(j int) string {
	if j == 0 {
		return "/index.html"
	}
	return fmt.Sprintf("/p/%03d.html", j)
}

// blobOf is the pool index of file j of site i: spread over the pool so
// that every site names ~files distinct blobs and every blob is named by
// many sites.
func blobOf(i, j, poolSize int) int { return (i*7919 + j*104729) % poolSize }

// manifest is the JSON create-deploy body of site i.
func manifest(i, files int, p *pool) []byte {
	var b bytes.Buffer
	b.WriteString(`{"files":{`)
	for j := range files {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%q", sitePath(j), p.hashes[blobOf(i, j, len(p.hashes))])
	}
	b.WriteString("}}")
	return b.Bytes()
}

// buildSite creates site i, deploys its manifest (every blob already
// stored) and publishes it: three API calls, four Raft rounds.
func buildSite(ctx context.Context, n *atolltest.Node, i, files int, p *pool) error {
	name := siteName(i)
	// A step that failed is made again, at most three times: under heavy
	// load a command's outcome can be unknown to the API (a leader
	// change), and a site must end up published.
	var err error
	for range 3 {
		if err = createAndDeploy(ctx, n, name, manifest(i, files, p)); err == nil {
			return nil
		}
		retries.Add(1)
		log.Printf("site %s: %v; trying again", name, err)
	}
	return err
}

// createAndDeploy creates site name (a 409 means an earlier attempt did),
// deploys manifest m, whose blobs are all stored, and publishes it.
func createAndDeploy(ctx context.Context, n *atolltest.Node, name string, m []byte) error {
	err := n.Call(ctx, "POST", "/v1/sites", strings.NewReader(`{"name":"`+name+`"}`), nil)
	var se *atolltest.StatusError
	if err != nil && !(asStatus(err, &se) && se.Status == 409) {
		return fmt.Errorf("create site: %w", err)
	}
	return deployAndPublish(ctx, n, name, m)
}

// retries counts the deploys buildSite made again.
var retries atomic.Int64

// deployAndPublish creates a deploy of site name with manifest m, whose
// blobs are all stored, and publishes it.
func deployAndPublish(ctx context.Context, n *atolltest.Node, name string, m []byte) error {
	var d struct {
		ID       string   `json:"id"`
		Required []string `json:"required"`
	}
	if err := n.Call(ctx, "POST", "/v1/sites/"+name+"/deploys", bytes.NewReader(m), &d); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	if len(d.Required) > 0 {
		return fmt.Errorf("deploy %s requires %d blobs that were uploaded", d.ID, len(d.Required))
	}
	if err := n.Call(ctx, "POST", "/v1/deploys/"+d.ID+"/publish", nil, nil); err != nil {
		return fmt.Errorf("publish %s: %w", d.ID, err)
	}
	return nil
}

// genStats is how the generation went.
type genStats struct {
	Built   int     `json:"built"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"sites_per_s"`
	Stopped string  `json:"stopped,omitempty"`
}

// buildSites builds sites [from, to) with conc workers spread over nodes,
// logging progress every 10 s, until done or limit has passed. It returns
// how many were built (a prefix [from, from+built) is complete).
func buildSites(ctx context.Context, nodes []*atolltest.Node, from, to, files, conc int, p *pool, limit time.Duration) (genStats, error) {
	start := time.Now()
	deadline := start.Add(limit)
	var next, done atomic.Int64
	next.Store(int64(from))
	var firstErr error
	var errOnce sync.Once
	stopLog := make(chan struct{})
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopLog:
				return
			case <-t.C:
				d := done.Load()
				log.Printf("built %d of %d sites (%.0f sites/s)", d, to-from, float64(d)/time.Since(start).Seconds())
			}
		}
	}()
	var wg sync.WaitGroup
	var stopped atomic.Bool
	for w := range conc {
		wg.Go(func() {
			n := nodes[w%len(nodes)]
			for ctx.Err() == nil && !stopped.Load() {
				// The deadline is checked before an index is taken, so
				// every index taken is built: the built sites are a prefix.
				if time.Now().After(deadline) {
					stopped.Store(true)
					return
				}
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if err := buildSite(ctx, n, i, files, p); err != nil {
					errOnce.Do(func() { firstErr = err })
					stopped.Store(true)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	close(stopLog)
	st := genStats{Built: int(done.Load()), Seconds: time.Since(start).Seconds()}
	st.PerSec = float64(st.Built) / st.Seconds
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr == nil && st.Built < to-from {
		st.Stopped = fmt.Sprintf("stopped after %s (-max-generate)", limit)
	}
	return st, firstErr
}

// bulkSites is the number of sites of one POST /v1/bulk/sites.
const bulkSites = 1000

// bulkBody is the POST /v1/bulk/sites body of sites [from, to).
func bulkBody(from, to, files int, p *pool) []byte {
	sites := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		sites = append(sites, i)
	}
	return bulkBodyOf(sites, files, p)
}

// bulkBodyOf is the POST /v1/bulk/sites body of the given sites.
func bulkBodyOf(sites []int, files int, p *pool) []byte {
	var b bytes.Buffer
	b.WriteString(`{"sites":[`)
	for k, i := range sites {
		if k > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":%q,%s`, siteName(i), manifest(i, files, p)[1:]) // a manifest is {"files":{...}}
	}
	b.WriteString("]}")
	return b.Bytes()
}

// bulkBuild builds sites [from, to) through POST /v1/bulk/sites on n,
// bulkSites per call, one call at a time (the leader pipelines each call's
// rounds itself), until done or limit has passed.
// Like buildSites, the sites built are a prefix.
func bulkBuild(ctx context.Context, n *atolltest.Node, from, to, files int, p *pool, limit time.Duration) (genStats, error) {
	start := time.Now()
	deadline := start.Add(limit)
	done := 0
	var err error
	for lo := from; lo < to && ctx.Err() == nil && time.Now().Before(deadline); lo += bulkSites {
		hi := min(lo+bulkSites, to)
		if err = n.Call(ctx, "POST", "/v1/bulk/sites", bytes.NewReader(bulkBody(lo, hi, files, p)), nil); err != nil {
			log.Printf("bulk sites %d-%d: %v; completing them", lo, hi-1, err)
			if err = completeRange(ctx, n, lo, hi, files, p); err != nil {
				err = fmt.Errorf("bulk sites %d-%d: %w", lo, hi-1, err)
				break
			}
		}
		if done += hi - lo; done%10_000 < bulkSites {
			log.Printf("bulk: built %d of %d sites (%.0f sites/s)", done, to-from, float64(done)/time.Since(start).Seconds())
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	st := genStats{Built: done, Seconds: time.Since(start).Seconds()}
	st.PerSec = float64(st.Built) / st.Seconds
	if err == nil && st.Built < to-from {
		st.Stopped = fmt.Sprintf("stopped after %s (-max-generate)", limit)
	}
	return st, err
}

// completeRange makes sure every site of [lo, hi) is built after a bulk
// call whose outcome is partly unknown (a leader change under load): the
// sites that do not exist go out in one more bulk call, those that exist
// without a published deploy through the per-site path. A bulk call that
// answers 409 (a site the list said missing exists: the entries of the
// failed call were committed after the list was read) makes it read again.
func completeRange(ctx context.Context, n *atolltest.Node, lo, hi, files int, p *pool) error {
	var err error
	for range 5 {
		if err = completeOnce(ctx, n, lo, hi, files, p); err == nil || ctx.Err() != nil {
			return err
		}
		log.Printf("completing sites %d-%d: %v; trying again", lo, hi-1, err)
	}
	return err
}

// completeOnce is one attempt of completeRange. It reads the site list of
// n once n has applied what the leader had committed (caughtUp): a list
// read from a node that lags says sites are missing that exist, and the
// bulk call that re-creates them is refused whole.
func completeOnce(ctx context.Context, n *atolltest.Node, lo, hi, files int, p *pool) error {
	published, err := siteList(ctx, n)
	if err != nil {
		return err
	}
	var missing, unpublished []int
	for i := lo; i < hi; i++ {
		switch pub, ok := published[siteName(i)]; {
		case !ok:
			missing = append(missing, i)
		case !pub:
			unpublished = append(unpublished, i)
		}
	}
	retries.Add(int64(len(missing) + len(unpublished)))
	for _, i := range unpublished {
		if err := buildSite(ctx, n, i, files, p); err != nil {
			return err
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return n.Call(ctx, "POST", "/v1/bulk/sites", bytes.NewReader(bulkBodyOf(missing, files, p)), nil)
}

// siteList returns whether each site of the cluster has a published
// deploy, as n lists them once it has caught up with the leader.
func siteList(ctx context.Context, n *atolltest.Node) (map[string]bool, error) {
	if err := caughtUp(ctx, n); err != nil {
		return nil, err
	}
	var list struct {
		Sites []struct {
			Name      string `json:"name"`
			Published string `json:"published"`
		} `json:"sites"`
	}
	if err := n.Call(ctx, "GET", "/v1/sites", nil, &list); err != nil {
		return nil, err
	}
	published := make(map[string]bool, len(list.Sites))
	for _, s := range list.Sites {
		published[s.Name] = s.Published != ""
	}
	return published, nil
}

// caughtUp waits, at most a minute, until n has applied the leader's
// commit index as n's GET /v1/status gives it when first asked.
func caughtUp(ctx context.Context, n *atolltest.Node) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var target uint64
	for {
		var st struct {
			Applied      uint64 `json:"applied_index"`
			LeaderCommit uint64 `json:"leader_commit"`
			Leader       string `json:"leader_id"`
		}
		err := n.Call(ctx, "GET", "/v1/status", nil, &st)
		if err == nil && target == 0 && st.Leader != "" {
			target = st.LeaderCommit
		}
		if err == nil && target > 0 && st.Applied >= target {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not catch up with the leader's commit index %d within a minute (last error: %v)", n.ID, target, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// verifyBuilt checks that the cluster holds, published, every site of
// [0, built): what the report counts as built, read back from the cluster.
func verifyBuilt(ctx context.Context, n *atolltest.Node, built int) error {
	published, err := siteList(ctx, n)
	if err != nil {
		return fmt.Errorf("read back the sites built: %w", err)
	}
	var absent []string
	for i := range built {
		if !published[siteName(i)] {
			absent = append(absent, siteName(i))
		}
	}
	if len(absent) > 0 {
		return fmt.Errorf("%d of the %d sites counted as built are not published on %s (first: %s)", len(absent), built, n.ID, absent[0])
	}
	return nil
}
