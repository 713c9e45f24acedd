package scrub

import (
	"context"
	"time"
)

// burst: the pacer lets reads run this far ahead of the rate before it
// sleeps, so it does not sleep once per 32 KiB read.
const burst = 20 * time.Millisecond

// pacer bounds a pass's reads to rate bytes per second.
type pacer struct {
	ctx   context.Context
	rate  float64
	next  time.Time // when the bytes read so far are paid for
	total int64
}

// wait is blobstore.Store.VerifyPaced's wait: it counts n bytes read and
// sleeps while the reads are ahead of the rate by more than burst.
func (p *pacer) wait(n int) error {
	p.total += int64(n)
	now := time.Now()
	if p.next.Before(now) {
		p.next = now // idle time earns no credit
	}
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	if d := p.next.Sub(now); d > burst {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-p.ctx.Done():
		case <-t.C:
		}
	}
	return p.ctx.Err()
}
