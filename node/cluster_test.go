package node_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/builder/client"
	"github.com/atoll-hosting/atoll/node"
	"github.com/atoll-hosting/atoll/node/nodetest"
)

// site writes n small distinct files (and a shared index) into a temp dir.
func site(t *testing.T, n int, version string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("index.html", "<h1>"+version+"</h1>")
	for i := range n {
		write(fmt.Sprintf("p/%d.html", i), fmt.Sprintf("<p>page %d %s</p>%s", i, version, strings.Repeat(" ", i)))
	}
	return dir
}

func deploy(t *testing.T, c *client.Client, siteName, dir string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := c.DeployDir(ctx, dir, siteName, client.DeployOptions{Publish: true})
	if err != nil {
		t.Fatalf("deploy %s: %v", dir, err)
	}
	return d.ID
}

// get fetches path of site from a node's edge.
func get(edgeURL, siteName, path string) (int, string, error) {
	req, err := http.NewRequest("GET", edgeURL+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = siteName + ".localhost"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// sha is the content address of s.
var sha = atolltest.SHA256Hex[string]

// copies counts the members holding hash locally.
func copies(c *nodetest.Cluster, hash string) (n int, on []string) {
	for _, m := range c.Running() {
		if m.Node.LocalBlobs().Has(hash) {
			n++
			on = append(on, m.Cfg.ID)
		}
	}
	return n, on
}

func TestClusterShardsReplicatesAndServes(t *testing.T) {
	c := nodetest.New(t, 4, 1, func(cfg *node.Config) { cfg.Replicas = 2 })
	leader := c.Leader()
	var follower *nodetest.Member
	for _, m := range c.Members {
		if m != leader && m.Cfg.Role == "core" {
			follower = m
			break
		}
	}
	// Writes through a follower are forwarded to the leader.
	cl := c.Client(follower)
	ctx := context.Background()
	if _, err := cl.CreateSite(ctx, "docs", nil, 0); err != nil {
		t.Fatalf("create site through follower %s: %v", follower.Cfg.ID, err)
	}
	dir := site(t, 30, "v1")
	deploy(t, cl, "docs", dir)

	// Every blob sits on its R=2 owners; the other cores hold no copy
	// (the node that took the upload, and the edge, may keep cache copies).
	owner := leader.Node
	for i := range 30 {
		body := fmt.Sprintf("<p>page %d v1</p>%s", i, strings.Repeat(" ", i))
		h := sha(body)
		want := owner.Owners(h)
		if len(want) != 2 {
			t.Fatalf("owners of page %d: %v, want 2", i, want)
		}
		for _, m := range c.Members {
			if m.Cfg.Role != "core" {
				continue
			}
			has := m.Node.LocalBlobs().Has(h)
			isOwner := m.Cfg.ID == want[0] || m.Cfg.ID == want[1]
			if has != isOwner && m != follower {
				t.Errorf("page %d on %s: held=%v, owner=%v (owners %v)", i, m.Cfg.ID, has, isOwner, want)
			}
		}
	}

	// Every node's edge serves every file, fetching what it lacks.
	for _, m := range c.Members {
		for i := range 30 {
			want := fmt.Sprintf("<p>page %d v1</p>%s", i, strings.Repeat(" ", i))
			status, body, err := get(m.Node.EdgeURL(), "docs", fmt.Sprintf("/p/%d", i))
			if err != nil || status != 200 || body != want {
				t.Fatalf("%s /p/%d: %d %q %v, want 200 %q", m.Cfg.ID, i, status, body, err, want)
			}
		}
	}
}

func TestLeaderFailoverKeepsServingAndWriting(t *testing.T) {
	c := nodetest.New(t, 3, 1)
	ctx := context.Background()
	edge := c.Member("edge1")
	cl := c.Client(edge)
	if _, err := cl.CreateSite(ctx, "blog", nil, 0); err != nil {
		t.Fatal(err)
	}
	deploy(t, cl, "blog", site(t, 10, "v1"))
	c.Eventually(10*time.Second, "edge prefetched the deploy", func() bool {
		st, _ := edge.Node.LocalBlobs().Usage()
		return st >= 11
	})

	// Readers hammer the edge while the leader dies.
	var failed, served atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				status, body, err := get(edge.Node.EdgeURL(), "blog", fmt.Sprintf("/p/%d", i%10))
				if err != nil || status != 200 || !strings.Contains(body, "v1") && !strings.Contains(body, "v2") {
					failed.Add(1)
				} else {
					served.Add(1)
				}
			}
		})
	}
	old := c.Leader()
	killed := time.Now()
	c.Kill(old)
	newLeader := c.Leader()
	elected := time.Since(killed)

	// Writes resume through any node, including the edge.
	start := time.Now()
	deploy(t, cl, "blog", site(t, 10, "v2"))
	resumed := time.Since(killed)
	t.Logf("leader %s killed: %s elected after %s, first deploy done %s after the kill (deploy took %s)",
		old.Cfg.ID, newLeader.Cfg.ID, elected.Round(time.Millisecond), resumed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d reads through the edge failed while the leader died", failed.Load(), failed.Load()+served.Load())
	}
	if resumed > 15*time.Second {
		t.Errorf("writes resumed %s after the leader died, want a few seconds", resumed)
	}
	_, body, _ := get(edge.Node.EdgeURL(), "blog", "/")
	if body != "<h1>v2</h1>" {
		t.Errorf("after failover the edge serves %q, want v2", body)
	}

	// The old leader comes back as a follower and catches up.
	c.Restart(old)
	c.WaitReady()
	if _, body, _ := get(old.Node.EdgeURL(), "blog", "/"); body != "<h1>v2</h1>" {
		t.Errorf("restarted node serves %q, want v2", body)
	}
}

func TestEdgeSkipsPeerWithCorruptCopy(t *testing.T) {
	c := nodetest.New(t, 3, 1, func(cfg *node.Config) { cfg.Replicas = 2 })
	body := strings.Repeat("precious bytes ", 100)
	h, edge, first := oneFileBehindEdge(t, c, body)
	// The edge lacks the blob; corrupt the first owner's copy: the edge
	// must skip it.
	var corrupted bool
	filepath.WalkDir(first.Cfg.DataDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == h {
			os.WriteFile(p, []byte(strings.Repeat("evil bytes here", 100)), 0o644)
			corrupted = true
		}
		return nil
	})
	if !corrupted {
		t.Fatalf("no file %s under %s", h, first.Cfg.DataDir)
	}
	status, got, err := get(edge.Node.EdgeURL(), "s", "/f.txt")
	if err != nil || status != 200 || got != body {
		t.Fatalf("edge after a corrupt owner: %d, %d bytes, %v; want 200 and the original %d bytes", status, len(got), err, len(body))
	}
}

func TestDrainRemoveAndRepair(t *testing.T) {
	c := nodetest.New(t, 4, 0, func(cfg *node.Config) { cfg.Replicas = 2 })
	ctx := context.Background()
	leader := c.Leader()
	cl := c.Client(leader)
	if _, err := cl.CreateSite(ctx, "s", nil, 0); err != nil {
		t.Fatal(err)
	}
	deploy(t, cl, "s", site(t, 40, "v1"))

	var victim *nodetest.Member
	for _, m := range c.Members {
		if m != leader {
			victim = m
			break
		}
	}
	if _, err := cl.DrainNode(ctx, victim.Cfg.ID); err != nil {
		t.Fatal(err)
	}
	c.Eventually(30*time.Second, "drain done", func() bool {
		st, err := cl.DrainStatus(ctx, victim.Cfg.ID)
		return err == nil && st.Done
	})
	if _, err := cl.RemoveNode(ctx, victim.Cfg.ID, false); err != nil {
		t.Fatalf("remove drained %s: %v", victim.Cfg.ID, err)
	}
	c.Kill(victim)
	os.RemoveAll(victim.Cfg.DataDir) // its data can go

	rep, err := cl.Repair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.UnderReplicated != 0 || rep.Missing != 0 || rep.Referenced != 41 {
		t.Errorf("repair after drain+remove: %+v, want 41 referenced, 0 under-replicated, 0 missing", rep)
	}
	for i := range 40 {
		h := sha(fmt.Sprintf("<p>page %d v1</p>%s", i, strings.Repeat(" ", i)))
		if n, on := copies(c, h); n < 2 {
			t.Errorf("page %d on %v, want 2 copies", i, on)
		}
	}

	// Losing a node's disk: repair brings every blob back to R copies.
	var lost *nodetest.Member
	for _, m := range c.Running() {
		if m != c.Leader() {
			lost = m
			break
		}
	}
	c.Kill(lost)
	os.RemoveAll(filepath.Join(lost.Cfg.DataDir, "blobs"))
	c.Restart(lost)
	c.WaitReady()
	rep, err = cl.Repair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.UnderReplicated != 0 || rep.Missing != 0 || rep.Pulled == 0 {
		t.Errorf("repair after disk loss on %s: %+v, want copies pulled back and 0 under-replicated", lost.Cfg.ID, rep)
	}
}

func TestRemoveRefusesLastCopy(t *testing.T) {
	c := nodetest.New(t, 2, 0, func(cfg *node.Config) { cfg.Replicas = 1 })
	ctx := context.Background()
	leader := c.Leader()
	other := c.Members[0]
	if other == leader {
		other = c.Members[1]
	}
	// Upload through the node to remove: it keeps a copy of everything, the
	// leader only what it owns.
	if _, err := c.Client(other).CreateSite(ctx, "s", nil, 0); err != nil {
		t.Fatal(err)
	}
	deploy(t, c.Client(other), "s", site(t, 20, "v1"))
	cl := c.Client(leader)
	if n, _ := other.Node.LocalBlobs().Usage(); n == 0 {
		t.Fatalf("%s holds no blob; the test needs it to own some", other.Cfg.ID)
	}
	_, err := cl.RemoveNode(ctx, other.Cfg.ID, false)
	if err == nil || !strings.Contains(err.Error(), "last copy") {
		t.Fatalf("remove %s holding the only copies: %v, want a refusal naming the last copy", other.Cfg.ID, err)
	}
	if _, err := cl.RemoveNode(ctx, other.Cfg.ID, true); err != nil {
		t.Fatalf("forced remove: %v", err)
	}
	nodes, err := cl.Nodes(ctx)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("nodes after forced remove: %+v %v, want only the leader", nodes, err)
	}
}

func TestPeerEndpointsNeedTheClusterKey(t *testing.T) {
	c := nodetest.New(t, 1, 0)
	api := c.Members[0].Node.APIURL()
	hash := sha("x")
	tests := []struct {
		name, method, path, header, value string
		want                              int
	}{
		{"builder token on blob fetch", "GET", "/v1/peer/blobs/" + hash, "Authorization", "Bearer " + nodetest.Token, 403},
		{"wrong key on blob fetch", "GET", "/v1/peer/blobs/" + hash, "X-Atoll-Cluster-Key", "nope", 403},
		{"no key on apply", "POST", "/v1/peer/apply", "", "", 403},
		{"builder token on has", "POST", "/v1/peer/has", "Authorization", "Bearer " + nodetest.Token, 403},
		{"right key, absent blob", "GET", "/v1/peer/blobs/" + hash, "X-Atoll-Cluster-Key", nodetest.Key, 404},
		{"wrong key on join", "POST", "/v1/nodes", "X-Atoll-Cluster-Key", "nope", 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, api+tc.path, strings.NewReader("{}"))
			if tc.header != "" {
				req.Header.Set(tc.header, tc.value)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("got %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

func TestJoinNeedsTheClusterKey(t *testing.T) {
	c := nodetest.New(t, 1, 0)
	cfg := node.DefaultConfig()
	cfg.ID, cfg.DataDir = "intruder", t.TempDir()
	cfg.RaftAddr, cfg.APIAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Join, cfg.ClusterKey = c.Members[0].Node.APIURL(), "wrong-key"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := node.Start(ctx, cfg)
	if err == nil {
		n.Close()
		t.Fatal("a node with the wrong cluster key joined")
	}
	if !strings.Contains(err.Error(), "401") {
		t.Errorf("join error %q, want the cluster's 401", err)
	}
}

// Every acknowledged deploy survives the loss of any one core node at any
// moment: each round deploys new content through a random node and kills
// a random core node right after the acknowledgement; in the end, with one
// core node down, every acknowledged deploy is served intact by every
// running node.
func TestAcknowledgedDeploysSurviveANodeLoss(t *testing.T) {
	c := nodetest.New(t, 3, 1)
	ctx := context.Background()
	if _, err := c.Client(c.Leader()).CreateSite(ctx, "s", nil, 0); err != nil {
		t.Fatal(err)
	}
	type acked struct {
		id    string
		files map[string]string
	}
	var deploys []acked
	var down *nodetest.Member
	for round := range 6 {
		running := c.Running()
		via := running[round%len(running)]
		dir := t.TempDir()
		files := map[string]string{}
		for i := range 5 {
			name := fmt.Sprintf("r%d-%d.txt", round, i)
			files[name] = fmt.Sprintf("round %d file %d %s", round, i, strings.Repeat("x", round*100+i))
			os.WriteFile(filepath.Join(dir, name), []byte(files[name]), 0o644)
		}
		var id string
		c.Eventually(30*time.Second, "an acknowledged deploy", func() bool {
			d, err := c.Client(via).DeployDir(ctx, dir, "s", client.DeployOptions{Publish: true})
			if err != nil {
				t.Logf("round %d: deploy through %s: %v (retrying)", round, via.Cfg.ID, err)
				return false
			}
			id = d.ID
			return true
		})
		deploys = append(deploys, acked{id, files})
		// Bring the previous victim back, then kill another core node.
		if down != nil {
			c.Restart(down)
		}
		cores := []*nodetest.Member{}
		for _, m := range c.Running() {
			if m.Cfg.Role == "core" {
				cores = append(cores, m)
			}
		}
		down = cores[(round*7+1)%len(cores)]
		c.Kill(down)
	}
	c.WaitReady() // a node restarted last must learn the latest deploys first
	for _, m := range c.Running() {
		for _, d := range deploys {
			for name, body := range d.files {
				req, _ := http.NewRequest("GET", m.Node.EdgeURL()+"/"+name, nil)
				req.Host = d.id + "--s.localhost"
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("%s: %v", m.Cfg.ID, err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(got) != body {
					t.Errorf("%s serves deploy %s /%s: %d %q, want the acknowledged bytes", m.Cfg.ID, d.id, name, resp.StatusCode, got)
				}
			}
		}
	}
}

// oneFileBehindEdge publishes body as /f.txt of site "s", waits for edge1
// to prefetch it, then deletes the edge's copy, so that the next read
// through the edge fetches it from the owners. It returns the blob's hash,
// the edge and the blob's first owner.
func oneFileBehindEdge(t *testing.T, c *nodetest.Cluster, body string) (hash string, edge, first *nodetest.Member) {
	t.Helper()
	cl := c.Client(c.Leader())
	if _, err := cl.CreateSite(context.Background(), "s", nil, 0); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f.txt"), []byte(body), 0o644)
	deploy(t, cl, "s", dir)
	hash = sha(body)
	edge = c.Member("edge1")
	c.Eventually(10*time.Second, "edge prefetch", func() bool { return edge.Node.LocalBlobs().Has(hash) })
	if err := edge.Node.LocalBlobs().Delete(hash); err != nil {
		t.Fatal(err)
	}
	return hash, edge, c.Member(edge.Node.Owners(hash)[0])
}
