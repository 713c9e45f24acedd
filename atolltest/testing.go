package atolltest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// builtBin is the binary Main built, the default NodeConfig.Bin.
var builtBin string

// Build compiles cmd/atoll with the race detector (a data race in a node
// is a finding of the test that runs it) into dir and returns the path of
// the binary.
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "atoll")
	cmd := exec.CommandContext(ctx, "go", "build", "-race", "-o", bin, "github.com/atoll-hosting/atoll/cmd/atoll")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build atoll: %w", err)
	}
	return bin, nil
}

// Main builds the binary once for the test process, runs the tests and
// returns their exit code: func TestMain(m *testing.M) {
// os.Exit(atolltest.Main(m)) }.
func Main(m *testing.M) int {
	dir, err := os.MkdirTemp("", "atoll-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if builtBin, err = Build(context.Background(), dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// Bin is the binary Main built.
func Bin() string { return builtBin }

// Server is a Node driven by a test: its methods fail the test instead of
// returning an error, and its process is killed when the test ends. Its API
// is the test form of Node.API (no context, the answer decoded as JSON);
// every other Node method stays reachable as is.
type Server struct {
	*Node
	t        testing.TB
	cleanups bool // the kill at the end of the test is registered
}

// NewServer makes a node for t, not launched; Data defaults to a folder
// under t.TempDir().
func NewServer(t testing.TB, cfg NodeConfig) *Server {
	t.Helper()
	if cfg.Data == "" {
		cfg.Data = filepath.Join(t.TempDir(), "data")
	}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &Server{Node: n, t: t}
}

// Start launches the server and waits until it answers /readyz: a cluster
// member with a known leader that has applied what the leader committed.
func (s *Server) Start() {
	s.t.Helper()
	s.StartUntil("/readyz")
}

// StartUntil launches the server and waits until path on its API answers
// 200 (/healthz for a node that waits to be added to a cluster). The first
// launch registers, as a cleanup of the test, a SIGKILL of the process
// and, if the test failed, a log of the end of its output.
func (s *Server) StartUntil(path string) {
	t := s.t
	t.Helper()
	if err := s.Launch(); err != nil {
		t.Fatal(err)
	}
	if !s.cleanups {
		s.cleanups = true
		t.Cleanup(func() {
			s.Stop(syscall.SIGKILL, 15*time.Second) // its output is complete once it exited
			if t.Failed() {
				lines := strings.Split(strings.TrimSpace(s.Output()), "\n")
				t.Logf("last lines of %s's output:\n%s", s.ID, strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
		})
	}
	s.WaitFor(path)
}

// WaitFor waits up to 30s until path on the API answers 200.
func (s *Server) WaitFor(path string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), 30*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx, path); err != nil {
		s.t.Fatalf("%v; output:\n%s", err, s.Output())
	}
}

// Kill sends sig and waits until the process exits (SIGKILL after 15s).
func (s *Server) Kill(sig syscall.Signal) {
	s.Stop(sig, 15*time.Second)
}

// Token is the admin token.
func (s *Server) Token() string {
	s.t.Helper()
	token, err := s.ReadToken()
	if err != nil {
		s.t.Fatal(err)
	}
	return token
}

// CLI runs an atoll client command against s with the admin token and
// returns its output and exit code.
func (s *Server) CLI(args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	return s.CLIAs(s.Token(), args...)
}

// CLIAs runs an atoll client command against s with token, the way a CI
// job holding a deploy token would.
func (s *Server) CLIAs(token string, args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	res, err := s.RunCLI(s.t.Context(), token, args...)
	if err != nil {
		s.t.Fatalf("run atoll %v: %v", args, err)
	}
	return res.Stdout, res.Stderr, res.Code
}

// MustCLI runs a client command with the admin token that must succeed,
// and returns its stdout.
func (s *Server) MustCLI(args ...string) string {
	s.t.Helper()
	return s.MustAs(s.Token(), args...)
}

// MustAs runs a client command with token that must succeed, and returns
// its stdout.
func (s *Server) MustAs(token string, args ...string) string {
	s.t.Helper()
	out, errOut, code := s.CLIAs(token, args...)
	if code != 0 {
		s.t.Fatalf("atoll %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// FailCLI runs a client command with the admin token that must fail with
// one line on stderr, and returns that line.
func (s *Server) FailCLI(args ...string) string {
	s.t.Helper()
	return s.FailAs(s.Token(), args...)
}

// FailAs runs a client command with token that must fail with one line on
// stderr, and returns that line.
func (s *Server) FailAs(token string, args ...string) string {
	s.t.Helper()
	out, errOut, code := s.CLIAs(token, args...)
	if code == 0 {
		s.t.Fatalf("atoll %s: exit 0, want failure\nstdout: %s", strings.Join(args, " "), out)
	}
	if lines := strings.Count(strings.TrimRight(errOut, "\n"), "\n") + 1; lines != 1 || errOut == "" {
		s.t.Fatalf("atoll %s: stderr has %d lines, want one:\n%s", strings.Join(args, " "), lines, errOut)
	}
	return errOut
}

// API calls the API with token ("" sends none) and returns the status and
// the decoded JSON answer (nil for an empty body).
func (s *Server) API(method, path, token, contentType string, body io.Reader) (int, map[string]any) {
	s.t.Helper()
	status, b, err := s.Node.API(s.t.Context(), method, path, token, contentType, body)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			s.t.Fatalf("%s %s: status %d, body not JSON: %q", method, path, status, b)
		}
	}
	return status, m
}

// Get makes one request to the edge for path at host, with header
// name/value pairs, and returns the answer and its body (as sent).
func (s *Server) Get(method, host, path string, hdr ...string) (*http.Response, string) {
	s.t.Helper()
	resp, body, err := s.Fetch(s.t.Context(), method, host, path, hdr...)
	if err != nil {
		s.t.Fatalf("%s %s%s: %v", method, host, path, err)
	}
	return resp, string(body)
}
