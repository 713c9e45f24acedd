package raft

import (
	"context"
	"io"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// newHCLogger returns the hclog.Logger hashicorp/raft, its transport and its
// snapshot store log to: warnings and errors go to l (with the hclog
// sub-logger's name as "module"); everything below is dropped. A nil l
// discards everything.
func newHCLogger(l *slog.Logger) hclog.Logger {
	if l == nil {
		return hclog.NewNullLogger()
	}
	il := hclog.NewInterceptLogger(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  hclog.Warn,
		Output: io.Discard, // the sink below is the only output
	})
	il.RegisterSink(slogSink{l})
	return il
}

// slogSink forwards hclog records at warn and above to slog.
type slogSink struct{ l *slog.Logger }

func (s slogSink) Accept(name string, level hclog.Level, msg string, args ...any) {
	if level < hclog.Warn || level == hclog.Off {
		return
	}
	lvl := slog.LevelWarn
	if level >= hclog.Error {
		lvl = slog.LevelError
	}
	ctx := context.Background()
	if !s.l.Enabled(ctx, lvl) {
		return
	}
	s.l.Log(ctx, lvl, msg, append([]any{"module", name}, args...)...)
}
