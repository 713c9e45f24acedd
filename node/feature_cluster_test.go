package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/node/nodetest"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/raft"
)

// oldNode answers the peer stats the way a node from before feature
// levels does: without a version or a level.
func oldNode(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != peer.StatsPath {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"id":"old-1","raft_state":"Follower","applied_index":1,"commit_index":1}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestFeatureLevel: a cluster whose nodes all run this binary reaches its
// highest feature level; every node reports its version and level; a call
// needing a level the cluster has not reached is refused naming the nodes
// that hold it back; a node whose binary is older than the cluster's level
// is refused at join, whether it joins by itself or an operator adds it.
func TestFeatureLevel(t *testing.T) {
	c := nodetest.New(t, 2, 1)
	leader := c.Leader()
	c.Eventually(30*time.Second, "the cluster at the highest feature level", func() bool {
		return leader.Node.Store().FeatureLevel() == atoll.MaxFeatureLevel
	})
	follower := c.Followers()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	st, err := c.Client(follower).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.FeatureLevel != atoll.MaxFeatureLevel || len(st.FeatureHeldBy) > 0 {
		t.Errorf("status: feature level %d held by %q, want %d held by none", st.FeatureLevel, st.FeatureHeldBy, atoll.MaxFeatureLevel)
	}
	for _, n := range st.Nodes {
		if n.Version != atoll.Release || n.FeatureLevel != atoll.MaxFeatureLevel {
			t.Errorf("status of %s: version %q level %d, want %q level %d", n.ID, n.Version, n.FeatureLevel, atoll.Release, atoll.MaxFeatureLevel)
		}
	}
	if err := follower.Node.RequireFeature(ctx, "x", atoll.MaxFeatureLevel); err != nil {
		t.Errorf("RequireFeature(the cluster's level) = %v, want nil", err)
	}

	// A node of an old binary in the node table holds a level back.
	old := oldNode(t)
	oldRec := atoll.Node{ID: "old-1", Role: atoll.RoleEdge, RaftAddr: "127.0.0.1:1", APIAddr: strings.TrimPrefix(old.URL, "http://"), State: atoll.NodeActive}
	if err := leader.Node.Store().Apply(ctx, raft.PutNode{Node: oldRec}); err != nil {
		t.Fatal(err)
	}
	c.WaitReady()
	err = follower.Node.RequireFeature(ctx, "--future", atoll.MaxFeatureLevel+1)
	var fe *atoll.FeatureError
	if !errors.As(err, &fe) || !errors.Is(err, atoll.ErrConflict) {
		t.Fatalf("RequireFeature(a level above the cluster's) = %v, want a FeatureError", err)
	}
	held := strings.Join(fe.HeldBy, ", ")
	for _, want := range []string{"old-1 (version unknown, level 1)", fmt.Sprintf("core1 (%s, level %d)", atoll.Release, atoll.MaxFeatureLevel), fmt.Sprintf("edge1 (%s, level %d)", atoll.Release, atoll.MaxFeatureLevel)} {
		if !strings.Contains(held, want) {
			t.Errorf("held by %q, want it to name %q", held, want)
		}
	}
	nodes, err := c.Client(follower).Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.ID == "old-1" && (n.Version != "" || n.FeatureLevel != atoll.LevelBase) {
			t.Errorf("node list: the old node has version %q level %d, want none and %d", n.Version, n.FeatureLevel, atoll.LevelBase)
		}
	}

	// Joins of binaries older than the cluster's level.
	join := func(id, apiAddr string, header http.Header) (int, string) {
		body, _ := json.Marshal(atoll.JoinRequest{ID: id, Role: atoll.RoleEdge, RaftAddr: "127.0.0.1:2", APIAddr: apiAddr})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, follower.Node.APIURL()+peer.JoinPath, bytes.NewReader(body))
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	byKey := http.Header{peer.HeaderClusterKey: {nodetest.Key}}
	byAdmin := http.Header{"Authorization": {"Bearer " + nodetest.Token}}
	for _, tt := range []struct {
		name, apiAddr string
		header        http.Header
		want          string
	}{
		{"by itself, announcing no level", "127.0.0.1:3", byKey, "node old-2 runs atoll a version from before feature levels, which knows feature levels up to 1, and the cluster is at level " + strconv.Itoa(atoll.MaxFeatureLevel)},
		{"by an operator, answering old stats", oldRec.APIAddr, byAdmin, "which knows feature levels up to 1, and the cluster is at level " + strconv.Itoa(atoll.MaxFeatureLevel)},
		{"by an operator, not answering", nodetest.FreeAddr(t), byAdmin, "start the node, then add it"},
	} {
		code, body := join("old-2", tt.apiAddr, tt.header)
		if code != http.StatusConflict || !strings.Contains(body, tt.want) {
			t.Errorf("join %s: %d %s, want 409 with %q", tt.name, code, body, tt.want)
		}
	}
}
