package node

import "testing"

// TestToldRemoved: a peer's proof of removal stands while this node's own
// applied index has not passed the proof's, and wakes watchRemoval.
func TestToldRemoved(t *testing.T) {
	tr := toldRemoved{wake: make(chan struct{}, 1)}
	if ok, _ := tr.holds(5); ok {
		t.Fatal("removed before any peer said so")
	}
	tr.set(10, "core1")
	select {
	case <-tr.wake:
	default:
		t.Error("set did not wake watchRemoval")
	}
	tests := []struct {
		applied uint64
		want    bool
	}{{5, true}, {10, true}, {11, false}}
	for _, tc := range tests {
		if got, by := tr.holds(tc.applied); got != tc.want || (got && by != "core1") {
			t.Errorf("holds(%d) = %v, %q; want %v by core1", tc.applied, got, by, tc.want)
		}
	}
}
