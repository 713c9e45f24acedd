package upgrade

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll/atolltest"
)

// previousRelease is the commit named in the file PREVIOUS_RELEASE: its
// first line that is neither empty nor a comment (#).
func previousRelease() (string, error) {
	f, err := os.Open("PREVIOUS_RELEASE")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			return line, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("PREVIOUS_RELEASE names no commit")
}

// git runs git with args in dir and returns its trimmed stdout.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// buildRelease builds the atoll binary of commit, taken from the git
// history of the checkout this package sits in, into dir: git archive into
// dir/src, then go build there (CGO_ENABLED=0, no race detector: the old
// binary is not under test; -trimpath, so that Go's build cache serves the
// next run although the source folder differs). The binary reports
// version. A commit missing from the history (a shallow clone) is an
// error of one line that says how to fetch it.
func buildRelease(ctx context.Context, commit, version, dir string) (string, error) {
	root, err := git(ctx, ".", "rev-parse", "--show-toplevel")
	if err != nil {
		return "", fmt.Errorf("the rolling-upgrade test builds the previous release from git history: %w", err)
	}
	if _, err := git(ctx, root, "cat-file", "-e", commit+"^{commit}"); err != nil {
		shallow, _ := git(ctx, root, "rev-parse", "--is-shallow-repository")
		hint := "fetch it (git fetch origin " + commit + ")"
		if shallow == "true" {
			hint = "this is a shallow clone: run git fetch --unshallow"
		}
		return "", fmt.Errorf("previous release %s (atolltest/upgrade/PREVIOUS_RELEASE) is not in this clone's git history; %s", commit, hint)
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	archive := filepath.Join(dir, "src.tar")
	if _, err := git(ctx, root, "archive", "--format=tar", "-o", archive, commit); err != nil {
		return "", err
	}
	if out, err := exec.CommandContext(ctx, "tar", "-xf", archive, "-C", src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("unpack %s: %w: %s", commit, err, bytes.TrimSpace(out))
	}
	bin := filepath.Join(dir, "atoll-"+version)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-X main.version="+version, "-o", bin, "./cmd/atoll")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the previous release %s: %w\n%s", commit, err, out)
	}
	return bin, nil
}

// runBin runs bin with args and returns its stdout; a non-zero exit is an
// error with its stderr.
func runBin(ctx context.Context, bin string, args ...string) (string, error) {
	res, err := atolltest.RunCommand(exec.CommandContext(ctx, bin, args...))
	if err == nil {
		err = res.Err()
	}
	return res.Stdout, err
}

// buildPrevious builds the previous release (PREVIOUS_RELEASE) in tmp and
// returns the binary and the version it was built as.
func buildPrevious(t *testing.T, tmp string) (bin, version string) {
	t.Helper()
	commit, err := previousRelease()
	if err != nil {
		t.Fatal(err)
	}
	version = "release-" + commit[:min(7, len(commit))]
	bin, err = buildRelease(t.Context(), commit, version, tmp)
	if err != nil {
		t.Fatal(err)
	}
	return bin, version
}
