package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/builder/client"
	"github.com/atoll-hosting/atoll/node/nodetest"
	"github.com/atoll-hosting/atoll/raft"
)

// metaState renders what the API tells of the metadata: sites with their
// published deploy and retained deploys, and the deploy tokens.
func metaState(t *testing.T, cl *client.Client) string {
	t.Helper()
	state, err := readMetaState(cl)
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// readMetaState is metaState for polling: the state may change between
// its calls (a site listed, then gone by the time its deploys are asked
// for), which is an error to retry, not a failure.
func readMetaState(cl *client.Client) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sites, err := cl.Sites(ctx)
	if err != nil {
		return "", fmt.Errorf("sites: %w", err)
	}
	var b strings.Builder
	for _, s := range sites {
		fmt.Fprintf(&b, "site %s domains %v published %s\n", s.Name, s.Domains, s.Published)
		ds, err := cl.Deploys(ctx, s.Name)
		if err != nil {
			return "", fmt.Errorf("deploys of %s: %w", s.Name, err)
		}
		for _, d := range ds {
			fmt.Fprintf(&b, "  deploy %s %s files %d\n", d.ID, d.State, d.Files)
		}
	}
	toks, err := cl.Tokens(ctx)
	if err != nil {
		return "", fmt.Errorf("tokens: %w", err)
	}
	for _, tk := range toks {
		fmt.Fprintf(&b, "token %s site %s\n", tk.ID, tk.Site)
	}
	return b.String(), nil
}

// everyNodeHas waits until every running member's API reports want.
func everyNodeHas(t *testing.T, c *nodetest.Cluster, want string) {
	t.Helper()
	for _, m := range c.Running() {
		cl := c.Client(m)
		var got string
		c.Eventually(15*time.Second, m.Cfg.ID+" to hold the restored state", func() bool {
			state, err := readMetaState(cl)
			got = state
			return err == nil && got == want
		})
	}
}

// TestSnapshotSaveRestore: save through a follower, change sites, deploys
// and tokens, refuse a damaged file without changing anything, restore
// through another node, and check every node (edge included) holds and
// serves the saved state, also after restarts, and that writes go on.
func TestSnapshotSaveRestore(t *testing.T) {
	c := nodetest.New(t, 3, 1)
	ctx := context.Background()
	followers := c.Followers()
	cl := c.Client(followers[0])
	for _, s := range []string{"blog", "shop"} {
		if _, err := cl.CreateSite(ctx, s, nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	v1 := deploy(t, cl, "blog", site(t, 5, "v1"))
	deploy(t, cl, "shop", site(t, 2, "shop1"))
	tok, err := cl.CreateToken(ctx, "blog", "ci")
	if err != nil {
		t.Fatal(err)
	}
	c.WaitReady()
	saved := metaState(t, cl)

	file := filepath.Join(t.TempDir(), "meta.snap")
	start := time.Now()
	info, err := c.Client(followers[1]).SaveSnapshotFile(ctx, file, verifyBackup)
	if err != nil {
		t.Fatalf("save: %v", err)
	}
	t.Logf("saved %+v in %s", info, time.Since(start).Round(time.Millisecond))
	if info.Node != followers[1].Cfg.ID || info.AppliedIndex == 0 || info.Bytes == 0 {
		t.Errorf("save info %+v, want node %s, an index and a size", info, followers[1].Cfg.ID)
	}
	if st, err := os.Stat(file); err != nil || st.Size() != info.Bytes {
		t.Errorf("saved file: %v, %v; want %d bytes", st, err, info.Bytes)
	}

	// Changes after the save.
	v2 := deploy(t, cl, "blog", site(t, 5, "v2"))
	if err := cl.DeleteSite(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateSite(ctx, "later", nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := cl.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	c.WaitReady()
	changed := metaState(t, cl)

	t.Run("damaged file is refused, nothing changes", func(t *testing.T) {
		good, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		flipped := bytes.Clone(good)
		flipped[len(flipped)/2] ^= 0x10
		for name, body := range map[string][]byte{
			"truncated": good[:len(good)*2/3],
			"bit flip":  flipped,
			"not ours":  []byte("PK\x03\x04 a zip file, say"),
		} {
			status, msg := rawRestore(t, followers[0].Node.APIURL(), nodetest.Token, body)
			if status != http.StatusBadRequest || !strings.Contains(msg, "snapshot") {
				t.Errorf("%s: %d %q, want 400 explaining the file", name, status, msg)
			}
			t.Logf("%s: %d %s", name, status, msg)
		}
		if got := metaState(t, cl); got != changed {
			t.Errorf("a refused restore changed the state:\nbefore %s\nafter  %s", changed, got)
		}
	})

	t.Run("deploy token may neither save nor restore", func(t *testing.T) {
		dt, err := cl.CreateToken(ctx, "blog", "other")
		if err != nil {
			t.Fatal(err)
		}
		scoped := client.New(followers[0].Node.APIURL(), dt.Token)
		var ae *client.Error
		if _, err := scoped.SaveSnapshot(ctx, new(bytes.Buffer)); !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
			t.Errorf("save with a deploy token = %v, want 403", err)
		}
		if _, err := scoped.RestoreSnapshotFile(ctx, file, verifyBackup); !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
			t.Errorf("restore with a deploy token = %v, want 403", err)
		}
		cl.RevokeToken(ctx, dt.ID)
	})

	start = time.Now()
	var res atoll.SnapshotRestored
	for attempt := 1; ; attempt++ {
		// Through a follower: proxied to the leader. Should leadership move
		// during the restore (a loaded test machine), its outcome is
		// unknown and the runbook says to run it again.
		res, err = c.Client(followers[1]).RestoreSnapshotFile(ctx, file, verifyBackup)
		var ae *client.Error
		if err == nil || attempt == 3 || !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
			break
		}
		t.Logf("restore attempt %d: %v; again", attempt, err)
		c.Leader()
	}
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	t.Logf("restored %+v in %s", res, time.Since(start).Round(time.Millisecond))
	if res.BackupIndex != info.AppliedIndex || res.AppliedIndex <= info.AppliedIndex || res.Sites != 2 {
		t.Errorf("restore answer %+v, want backup index %d and 2 sites", res, info.AppliedIndex)
	}
	// The token revoked after the save stays revoked: access control is
	// not rolled back.
	want := strings.ReplaceAll(saved, fmt.Sprintf("token %s site blog\n", tok.ID), "")
	everyNodeHas(t, c, want)
	for _, m := range c.Running() {
		var ready struct {
			AppliedIndex uint64 `json:"applied_index"`
		}
		c.Eventually(10*time.Second, m.Cfg.ID+" ready after the restore", func() bool {
			resp, err := http.Get(m.Node.APIURL() + "/readyz")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&ready) == nil && ready.AppliedIndex >= res.AppliedIndex
		})
	}
	edge := c.Member("edge1")
	c.Eventually(10*time.Second, "the edge to serve the restored blog", func() bool {
		_, body, _ := get(edge.Node.EdgeURL(), "blog", "/")
		return body == "<h1>v1</h1>"
	})
	if _, body, _ := get(edge.Node.EdgeURL(), "shop", "/"); body != "<h1>shop1</h1>" {
		t.Errorf("edge serves shop as %q, want its restored deploy", body)
	}

	// Restarts: a follower and the leader come back with the restored
	// state, nothing replayed on top of it.
	for _, m := range []*nodetest.Member{followers[0], c.Leader()} {
		c.Kill(m)
		c.Restart(m)
	}
	c.WaitReady()
	everyNodeHas(t, c, want)

	// Writes go on: a new site, and a rollforward to v2, whose blobs are
	// still stored (the GC grace is an hour).
	cl = c.Client(c.Leader())
	if _, err := cl.CreateSite(ctx, "fresh", nil, 0); err != nil {
		t.Fatalf("write after restore: %v", err)
	}
	v3 := deploy(t, cl, "blog", site(t, 5, "v2"))
	if v3 == v1 || v3 == v2 {
		t.Errorf("new deploy id %s reuses an old one", v3)
	}
	c.Eventually(10*time.Second, "the edge to serve the new deploy", func() bool {
		_, body, _ := get(edge.Node.EdgeURL(), "blog", "/")
		return body == "<h1>v2</h1>"
	})
	sites, _ := cl.Sites(ctx)
	var names []string
	for _, s := range sites {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"blog", "fresh", "shop"}) {
		t.Errorf("sites %v, want blog, fresh, shop", names)
	}
}

// rawRestore posts body to the restore endpoint and returns the status
// and error message.
func rawRestore(t *testing.T, api, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", api+"/v1/snapshot/restore", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", atoll.SnapshotContentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e atoll.ErrorResponse
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error
}

func verifyBackup(r io.Reader) (uint64, error) {
	info, err := raft.VerifyBackup(r)
	return info.AppliedIndex, err
}
