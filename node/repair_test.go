package node_test

import (
	"context"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll/node/nodetest"
)

// TestRepairIgnoresNeverUploadedBlobs: a client that dies between creating
// a deploy and uploading its files leaves the deploy uploading for good.
// Its blobs that no node holds were never stored, so the census must not
// report them missing or under-replicated forever (the chaos test found
// repair never converging after deploys cut short by a kill -9), while a
// blob of that deploy that was uploaded is still kept at R copies.
func TestRepairIgnoresNeverUploadedBlobs(t *testing.T) {
	c := nodetest.New(t, 3, 0)
	ctx := context.Background()
	cl := c.Client(c.Leader())
	if _, err := cl.CreateSite(ctx, "s", nil, 0); err != nil {
		t.Fatal(err)
	}
	deploy(t, cl, "s", site(t, 4, "v1")) // 5 blobs, published

	sent, never := "uploaded, deploy never finished", "never uploaded"
	d, err := cl.CreateDeploy(ctx, "s", map[string]string{
		"/index.html": sha("<h1>v1</h1>"), // already stored
		"/sent.txt":   sha(sent),
		"/never.txt":  sha(never),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.UploadBlob(ctx, sha(sent), strings.NewReader(sent), int64(len(sent))); err != nil {
		t.Fatal(err)
	}
	// The client gives up here: d stays uploading.

	rep, err := cl.Repair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Referenced != 7 || rep.UnderReplicated != 0 || rep.Missing != 0 {
		t.Errorf("census with deploy %s abandoned: %+v, want 7 referenced, 0 under-replicated, 0 missing", d.ID, rep)
	}
	if n, on := copies(c, sha(sent)); n != 3 {
		t.Errorf("the uploaded blob of the abandoned deploy is on %v, want its 3 owners", on)
	}
}
