package builder

import (
	"fmt"
	"testing"
	"time"
)

// TestConfirmationsExpire: a create-time answer stands for confirmTTL under
// the membership it was given in, and the memory stays bounded.
func TestConfirmationsExpire(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := newConfirmations()
	c.now = func() time.Time { return now }
	c.remember("d1", "m", []string{"h"}, 10)
	if got, ok := c.lookup("d1", "m"); !ok || got.bytes != 10 || len(got.missing) != 1 {
		t.Fatalf("fresh lookup = %+v, %v; want bytes 10, one missing", got, ok)
	}
	if _, ok := c.lookup("d1", "other"); ok {
		t.Errorf("lookup under another membership found the answer")
	}
	c.remember("d2", "m", nil, 0)
	now = now.Add(confirmTTL)
	if _, ok := c.lookup("d2", "m"); ok {
		t.Errorf("lookup after confirmTTL found the answer")
	}
	for i := range maxConfirmations + 10 {
		c.remember(fmt.Sprint("x", i), "m", nil, 0)
		now = now.Add(time.Millisecond)
	}
	if n := len(c.byID); n > maxConfirmations {
		t.Errorf("%d answers kept, want at most %d", n, maxConfirmations)
	}
	if _, ok := c.lookup(fmt.Sprint("x", maxConfirmations+9), "m"); !ok {
		t.Errorf("the newest answer was evicted")
	}
}
