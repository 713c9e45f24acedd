package node_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/node/nodetest"
)

// TestPublishCompletesCopiesOfAnAcknowledgedUpload: an upload acknowledged
// by two of its three owners must stay publishable when one of those two
// stops before the third has its copy (the crash test found this: a
// follower restarted, not yet repaired, while the other was killed). The
// publish copies the blob to the owner that lacks it instead of refusing
// the deploy with "missing".
func TestPublishCompletesCopiesOfAnAcknowledgedUpload(t *testing.T) {
	c := nodetest.New(t, 3, 0)
	ctx := context.Background()
	leader := c.Leader()
	var followers []*nodetest.Member
	for _, m := range c.Members {
		if m != leader {
			followers = append(followers, m)
		}
	}
	behind, stopped := followers[0], followers[1]
	cl := c.Client(leader)
	if _, err := cl.CreateSite(ctx, "s", nil, 0); err != nil {
		t.Fatal(err)
	}
	body := "acknowledged by two owners of three"
	d, err := cl.CreateDeploy(ctx, "s", map[string]string{"/f.txt": sha(body)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.UploadBlob(ctx, sha(body), strings.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	c.Eventually(10*time.Second, "the blob on its 3 owners", func() bool {
		n, _ := copies(c, sha(body))
		return n == 3
	})
	// behind never got its copy (it was down during the upload), and one
	// of the two that acknowledged it stops.
	if err := behind.Node.LocalBlobs().Delete(sha(body)); err != nil {
		t.Fatal(err)
	}
	c.Kill(stopped)

	if _, err := cl.Publish(ctx, d.ID); err != nil {
		t.Fatalf("publish with the blob on one reachable owner: %v", err)
	}
	if !behind.Node.LocalBlobs().Has(sha(body)) {
		t.Errorf("%s has no copy after the publish: the publish counted a copy it did not make", behind.Cfg.ID)
	}
	c.Eventually(10*time.Second, behind.Cfg.ID+" serving the published file", func() bool {
		code, got, err := get(behind.Node.EdgeURL(), "s", "/f.txt")
		return err == nil && code == 200 && got == body
	})
}
