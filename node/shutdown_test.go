package node_test

import (
	"testing"

	"github.com/atoll-hosting/atoll/node"
	"github.com/atoll-hosting/atoll/node/nodetest"
)

// A node with an HTTPS edge stops cleanly: Shutdown reports no error,
// whichever of the node's stop and the server's shutdown closes the HTTPS
// listener first (atoll server exits 0 on SIGTERM).
func TestShutdownWithHTTPSEdgeReportsNoError(t *testing.T) {
	c := nodetest.New(t, 1, 0, func(cfg *node.Config) { cfg.HTTPSAddr = "127.0.0.1:0" })
	if err := c.Members[0].Node.Shutdown(); err != nil {
		t.Fatalf("Shutdown: %v, want nil", err)
	}
}
