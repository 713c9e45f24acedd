package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/atoll-hosting/atoll/node"
)

// logFormat is the value of --log-format.
type logFormat string

const (
	logText logFormat = "text" // key=value (slog.TextHandler)
	logJSON logFormat = "json" // one JSON object per line (slog.JSONHandler)
)

// UnmarshalText accepts "text" or "json".
func (f *logFormat) UnmarshalText(b []byte) error {
	switch v := logFormat(b); v {
	case logText, logJSON:
		*f = v
		return nil
	}
	return fmt.Errorf("log format %q: want text or json", b)
}

// MarshalText returns the format's name.
func (f logFormat) MarshalText() ([]byte, error) { return []byte(f), nil }

// logger returns the node's logger writing to w in format f at level.
func (f logFormat) logger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if f == logJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// declareObservabilityFlags declares the flags of logs and metrics.
func declareObservabilityFlags(fs *flag.FlagSet, cfg *node.Config, format *logFormat) {
	fs.TextVar(format, "log-format", *format, "log `format` on stderr: text (key=value) or json (one object per line)")
	fs.StringVar(&cfg.AccessLog, "access-log", cfg.AccessLog, "`file` the edge appends one JSON line per request to, or - for stdout (default: none); reopened on SIGHUP")
	fs.BoolVar(&cfg.MetricsSiteLabels, "metrics-site-labels", cfg.MetricsSiteLabels, "also export per-site request and byte counters as Prometheus series labelled by site (small installations only)")
}

// reopenOnHUP reopens n's access log on every SIGHUP until the returned
// function is called.
func reopenOnHUP(n *node.Node) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				n.ReopenAccessLog()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}
