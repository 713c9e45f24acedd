package node_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/builder/client"
	"github.com/atoll-hosting/atoll/node"
	"github.com/atoll-hosting/atoll/node/nodetest"
)

// TestPublishCompletesCopiesOfAnAcknowledgedUpload: an upload acknowledged
// by two of its three owners must stay publishable when one of those two
// stops before the third has its copy (the crash test found this: a
// follower restarted, not yet repaired, while the other was killed). The
// publish copies the blob to the owner that lacks it instead of refusing
// the deploy with "missing", whether it goes through the owner that holds
// it (which pushes its copy) or through the one that lacks it (which
// fetches one).
func TestPublishCompletesCopiesOfAnAcknowledgedUpload(t *testing.T) {
	for _, via := range []string{"holder", "lacking"} {
		t.Run("through the "+via, func(t *testing.T) {
			c := nodetest.New(t, 3, 0)
			ctx := context.Background()
			leader, followers := c.Leader(), c.Followers()
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
			// behind never got its copy (it was down during the upload),
			// and one of the two that acknowledged it stops.
			if err := behind.Node.LocalBlobs().Delete(sha(body)); err != nil {
				t.Fatal(err)
			}
			c.Kill(stopped)

			if via == "lacking" {
				cl = c.Client(behind)
			}
			// A follower that has not applied the deploy's entries yet
			// answers 503 "retry in a moment": a client retries that.
			c.Eventually(10*time.Second, "an answer to the publish other than 503", func() bool {
				_, err = cl.Publish(ctx, d.ID)
				var ae *client.Error
				return !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable
			})
			if err != nil {
				t.Fatalf("publish with the blob on one reachable owner: %v", err)
			}
			if !behind.Node.LocalBlobs().Has(sha(body)) {
				t.Errorf("%s has no copy after the publish: the publish counted a copy it did not make", behind.Cfg.ID)
			}
			c.Eventually(10*time.Second, behind.Cfg.ID+" serving the published file", func() bool {
				code, got, err := get(behind.Node.EdgeURL(), "s", "/f.txt")
				return err == nil && code == 200 && got == body
			})
		})
	}
}

// A copy whose bytes rot on disk before the node made its compressed
// variants is not compressed (the variants would carry the rot): the node
// quarantines it and fetches an intact copy from another owner at once,
// as its scrubber would later. Here core1 had not compressed its copy
// when it stopped, and finds the rot right after its restart.
func TestRotFoundWhileCompressingIsReplaced(t *testing.T) {
	c := nodetest.New(t, 3, 0, func(cfg *node.Config) {
		if cfg.ID == "core1" {
			cfg.CompressWorkers = -1
		}
	})
	ctx := context.Background()
	m := c.Member("core1")
	body := strings.Repeat("<p>a page that compresses well</p>\n", 600)
	hash := sha(body)
	if _, err := c.Client(m).UploadBlob(ctx, hash, strings.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	c.Eventually(10*time.Second, "the blob on its 3 owners", func() bool {
		n, _ := copies(c, hash)
		return n == 3
	})
	dir := m.Cfg.DataDir
	c.Kill(m)
	path := filepath.Join(dir, "blobs", hash[:2], hash)
	rotten := []byte(body)
	rotten[100] ^= 0x01
	if err := os.WriteFile(path, rotten, 0o644); err != nil {
		t.Fatal(err)
	}
	m.Cfg.CompressWorkers = 1
	c.Restart(m)
	c.Eventually(20*time.Second, "an intact copy with its variants on core1", func() bool {
		info, err := m.Node.LocalBlobs().Stat(hash)
		return err == nil && len(info.Variants) > 0 && m.Node.LocalBlobs().Verify(hash) == nil
	})
	if q, _ := filepath.Glob(filepath.Join(dir, "blobs", "quarantine", hash+".*")); len(q) != 1 {
		t.Errorf("quarantined copies %v, want the rotten one", q)
	}
}
