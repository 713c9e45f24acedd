package main

import (
	"fmt"
	"runtime/debug"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/node"
)

// commit is the build's commit, set with -ldflags "-X main.commit=..."
// (the Makefile gives `git describe --always --dirty`); empty, it is read
// from the Go build information (vcs.revision), else "unknown".
var commit = ""

// buildCommit returns the commit this binary was built from.
func buildCommit() string {
	if commit != "" {
		return commit
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown"
	}
	rev = rev[:min(len(rev), 12)]
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// version is what a node reports as its version: the release and the
// build's commit, e.g. "0.11.0+4eb6744", or the release alone when the
// commit is unknown.
func version() string {
	if c := buildCommit(); c != "unknown" {
		return atoll.Release + "+" + c
	}
	return atoll.Release
}

// runVersion handles `atoll version`: the release, the commit, the highest
// feature level and the data-dir format this binary knows.
func runVersion(env *cliEnv) error {
	fmt.Fprintf(env.stdout, "atoll %s\ncommit:        %s\nfeature level: %d (the highest this binary knows)\ndata format:   %d (the newest data dir this binary opens)\n",
		atoll.Release, buildCommit(), atoll.MaxFeatureLevel, node.DataDirFormat)
	return nil
}
