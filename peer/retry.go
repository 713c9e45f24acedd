package peer

import (
	"context"
	"time"
)

// Backoff is how a caller retries a peer call: the wait after the first
// failed attempt, doubled after each further one up to Max.
type Backoff struct {
	First time.Duration
	Max   time.Duration
}

// Retry calls try until it returns nil, or an error retryable reports not
// worth retrying, or ctx ends; it waits b's backoff between attempts. It
// returns nil, that error, or, once ctx has ended, the last attempt's
// error (ctx.Err() if try never ran). try gets ctx.
func (b Backoff) Retry(ctx context.Context, retryable func(error) bool, try func(context.Context) error) error {
	wait := b.First
	err := ctx.Err()
	for ctx.Err() == nil {
		if err = try(ctx); err == nil || !retryable(err) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		wait = min(2*wait, max(b.Max, b.First))
	}
	return err
}
