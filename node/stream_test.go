package node

import (
	"errors"
	"testing"

	"github.com/atoll-hosting/atoll/builder"
)

// TestStreamSlots: past streamSlots blobs streaming at once, the next is
// refused as unavailable (503) before anything is asked of a peer.
func TestStreamSlots(t *testing.T) {
	n := &Node{streaming: make(chan struct{}, streamSlots)}
	for range streamSlots {
		n.streaming <- struct{}{}
	}
	_, _, err := n.streamBlob("0000000000000000000000000000000000000000000000000000000000000000", 0, -1)
	if !errors.Is(err, builder.ErrUnavailable) {
		t.Errorf("a stream past the slots: %v, want ErrUnavailable", err)
	}
}
