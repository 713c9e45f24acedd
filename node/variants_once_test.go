package node_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/node"
	"github.com/atoll-hosting/atoll/node/nodetest"
)

// deployTextFiles deploys count compressible text files to a new site and
// returns their hashes.
func deployTextFiles(t *testing.T, c *nodetest.Cluster, m *nodetest.Member, site string, count int) []string {
	t.Helper()
	cl := c.Client(m)
	if _, err := cl.CreateSite(context.Background(), site, nil, 0); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var hashes []string
	for i := range count {
		body := textOf(8<<10+i*512, uint64(100+i))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%d.html", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, sha(body))
	}
	deploy(t, cl, site, dir)
	return hashes
}

// waitAllCompressed waits until no running member has a blob without its
// variants (made, received, or still awaited).
func waitAllCompressed(t *testing.T, c *nodetest.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, m := range c.Running() {
		if err := m.Node.LocalBlobs().WaitCompressed(ctx); err != nil {
			t.Fatalf("%s: WaitCompressed: %v", m.Cfg.ID, err)
		}
	}
}

// variantBytes returns a blob's variants as a node stores them.
func variantBytes(t *testing.T, m *nodetest.Member, hash string) map[string][]byte {
	t.Helper()
	info, err := m.Node.LocalBlobs().Stat(hash)
	if err != nil {
		t.Fatalf("%s: Stat(%s): %v", m.Cfg.ID, hash[:8], err)
	}
	out := map[string][]byte{}
	for _, v := range info.Variants {
		f, _, err := m.Node.LocalBlobs().Open(hash, v.Encoding)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[v.Encoding] = b
	}
	return out
}

// TestVariantsMadeOncePerCluster: at R=3 on three cores, each blob of a
// deploy is compressed by one node, its first owner, and the two others
// receive its variants: every owner ends with the same variant bytes, each
// node compressed exactly the blobs it ranks first for, and none
// compressed a blob it was sent. The edge, which prefetches the published
// deploy, gets the variants too (sent, or with the blob once they exist)
// rather than compressing its copies; one it fetched bare just as they
// were sent waits its VariantsWait (5 s here) and compresses itself.
func TestVariantsMadeOncePerCluster(t *testing.T) {
	c := nodetest.New(t, 3, 1, func(cfg *node.Config) {
		if cfg.Role == atoll.RoleEdge {
			cfg.VariantsWait = 5 * time.Second
		}
	})
	c.Eventually(30*time.Second, "the cluster at feature level 3", func() bool {
		return c.Leader().Node.Store().FeatureLevel() >= atoll.LevelDeployBase
	})
	const files = 12
	hashes := deployTextFiles(t, c, c.Members[1], "once", files)

	firstFor := map[string]int64{}
	edge := c.Members[3]
	// The edge prefetches the deploy; a prefetch that failed (a fetch
	// timeout on a loaded machine) is completed by a visitor's request.
	c.Eventually(time.Minute, "the edge holding the deploy", func() bool {
		for i, h := range hashes {
			if !edge.Node.LocalBlobs().Has(h) {
				get(edge.Node.EdgeURL(), "once", fmt.Sprintf("/p%d.html", i))
				return false
			}
		}
		return true
	})
	waitAllCompressed(t, c)
	for _, h := range hashes {
		firstFor[c.Members[0].Node.Owners(h)[0]]++
		want := variantBytes(t, c.Members[0], h)
		if len(want) == 0 {
			t.Fatalf("blob %s has no variants on %s", h[:8], c.Members[0].Cfg.ID)
		}
		for _, m := range c.Members[1:] {
			if got := variantBytes(t, m, h); !reflect.DeepEqual(got, want) {
				t.Errorf("blob %s: the variants of %s differ from those of %s", h[:8], m.Cfg.ID, c.Members[0].Cfg.ID)
			}
		}
	}
	if st := edge.Node.LocalBlobs().CompressStats(); st.Compressed >= files {
		t.Errorf("the edge compressed %d of the %d blobs itself (received %d), want most sent", st.Compressed, files, st.Accepted)
	} else {
		t.Logf("edge: compressed %d, received %d", st.Compressed, st.Accepted)
	}
	var compressed, received int64
	for _, m := range c.Members[:3] {
		st := m.Node.LocalBlobs().CompressStats()
		if st.Compressed != firstFor[m.Cfg.ID] {
			t.Errorf("%s compressed %d blobs, want %d (those it is the first owner of)", m.Cfg.ID, st.Compressed, firstFor[m.Cfg.ID])
		}
		compressed += st.Compressed
		received += st.Accepted
	}
	if compressed != files || received != 2*files {
		t.Errorf("compressed %d and received %d in all, want %d and %d", compressed, received, files, 2*files)
	}
	var batches int64
	for _, m := range c.Members[:3] {
		batches += m.Node.VariantBatches()
	}
	if batches == 0 {
		t.Error("no batch of variants was sent at feature level 6")
	}
}

// TestVariantsBelowLevel6: in a cluster held below feature level 6 (a
// rolling upgrade from a binary that knows level 5), each blob's variants
// still go once per cluster, but blob by blob: the per-blob call that
// older nodes serve, never a batch.
func TestVariantsBelowLevel6(t *testing.T) {
	// Registered before the cluster's, so it runs after the nodes stop.
	t.Cleanup(node.PlayFeatureLevel(atoll.LevelCompactManifests))
	c := nodetest.New(t, 3, 0)
	c.Eventually(30*time.Second, "the cluster at feature level 5", func() bool {
		return c.Leader().Node.Store().FeatureLevel() == atoll.LevelCompactManifests
	})
	const files = 12
	hashes := deployTextFiles(t, c, c.Members[0], "perblob", files)
	waitAllCompressed(t, c)
	if got := c.Leader().Node.Store().FeatureLevel(); got != atoll.LevelCompactManifests {
		t.Fatalf("feature level %d, want %d: the test plays nodes that know no more", got, atoll.LevelCompactManifests)
	}
	// A sender counts a transfer once the answer is in, just after the
	// receiver settled the blob.
	sent := func() (n int64) {
		for _, m := range c.Members {
			n += m.Node.VariantsSent()
		}
		return n
	}
	c.Eventually(10*time.Second, "every transfer counted by its sender", func() bool { return sent() == 2*files })
	var compressed, received, batches int64
	for _, m := range c.Members {
		st := m.Node.LocalBlobs().CompressStats()
		compressed += st.Compressed
		received += st.Accepted
		batches += m.Node.VariantBatches()
		for _, h := range hashes {
			if info, err := m.Node.LocalBlobs().Stat(h); err != nil || len(info.Variants) == 0 || info.Pending {
				t.Errorf("%s: blob %s: %+v, %v; want its variants", m.Cfg.ID, h[:8], info, err)
			}
		}
	}
	if compressed != files || received != 2*files {
		t.Errorf("compressed %d and received %d in all; want %d and %d", compressed, received, files, 2*files)
	}
	if batches != 0 {
		t.Errorf("%d batches of variants sent below level 6, want none", batches)
	}
}

// TestVariantsFallbackWhenCompressorDown: with a core down, the blobs it
// would have compressed first are compressed by an owner still up (the
// next in placement order once the down one is known, or each waiting
// owner once its wait ends), so every blob on the live nodes gets its
// variants.
func TestVariantsFallbackWhenCompressorDown(t *testing.T) {
	c := nodetest.New(t, 3, 0, func(cfg *node.Config) { cfg.VariantsWait = time.Second })
	c.Eventually(30*time.Second, "the cluster at feature level 3", func() bool {
		return c.Leader().Node.Store().FeatureLevel() >= atoll.LevelDeployBase
	})
	down := c.Members[2]
	c.Kill(down)
	hashes := deployTextFiles(t, c, c.Members[0], "fallback", 12)
	waitAllCompressed(t, c)
	orphaned := 0
	for _, h := range hashes {
		if c.Members[0].Node.Owners(h)[0] == down.Cfg.ID {
			orphaned++
		}
		for _, m := range c.Running() {
			info, err := m.Node.LocalBlobs().Stat(h)
			if err != nil || len(info.Variants) == 0 || info.Pending {
				t.Errorf("%s: blob %s: %+v, %v; want its variants", m.Cfg.ID, h[:8], info, err)
			}
		}
	}
	if orphaned == 0 {
		t.Fatalf("no blob has %s as its first owner: the test proves nothing", down.Cfg.ID)
	}
	var compressed int64
	for _, m := range c.Running() {
		compressed += m.Node.LocalBlobs().CompressStats().Compressed
	}
	if compressed < int64(len(hashes)) {
		t.Errorf("the live nodes compressed %d blobs, want at least %d", compressed, len(hashes))
	}
}
