// Package ctxio makes blocking reads cancellable: a Reader stops at the
// next Read once its context is done, so that a cancelled upload, hash or
// compression stops within one buffer. It depends on the standard library
// alone (the Go client uses it).
package ctxio

import (
	"context"
	"io"
)

// Reader reads R until Ctx is done, then answers Ctx's error.
type Reader struct {
	Ctx context.Context
	R   io.Reader
}

// NewReader returns a Reader of r bound to ctx.
func NewReader(ctx context.Context, r io.Reader) Reader { return Reader{Ctx: ctx, R: r} }

func (c Reader) Read(p []byte) (int, error) {
	if err := c.Ctx.Err(); err != nil {
		return 0, err
	}
	return c.R.Read(p)
}
