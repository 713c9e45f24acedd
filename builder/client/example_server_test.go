package client_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/builder/buildertest"
)

// exampleServer starts the builder API over a one-node raft store on
// loopback, for the Examples, and returns its URL, its admin token and
// what stops it.
func exampleServer() (url, token string, stop func()) {
	tb := newExampleTB()
	srv := buildertest.NewServer(tb, builder.Config{})
	return srv.URL, buildertest.Token, tb.close
}

// exampleSite writes a small site into a temp dir and returns the dir.
func exampleSite() string {
	dir, err := os.MkdirTemp("", "atoll-example-site-")
	if err != nil {
		panic(err)
	}
	for name, content := range map[string]string{
		"index.html":       "<h1>Hello</h1>",
		"about/index.html": "<h1>About</h1>",
		"css/site.css":     "body { margin: 0 }",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			panic(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			panic(err)
		}
	}
	return dir
}

// exampleTB is a rafttest.TB outside a test: its temp dirs live under one
// folder, close runs the cleanups (last first) and removes that folder,
// and a fatal error panics.
type exampleTB struct {
	dir      string
	cleanups []func()
}

func newExampleTB() *exampleTB {
	dir, err := os.MkdirTemp("", "atoll-example-")
	if err != nil {
		panic(err)
	}
	return &exampleTB{dir: dir}
}

func (e *exampleTB) Helper()          {}
func (e *exampleTB) Cleanup(f func()) { e.cleanups = append(e.cleanups, f) }

func (e *exampleTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

func (e *exampleTB) TempDir() string {
	dir, err := os.MkdirTemp(e.dir, "")
	if err != nil {
		panic(err)
	}
	return dir
}

func (e *exampleTB) close() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	os.RemoveAll(e.dir)
}
