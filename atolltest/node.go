package atolltest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors of a Node.
var (
	// ErrExited: the process ended while it was waited for.
	ErrExited = errors.New("exited")
	// ErrNotLaunched: the node has no process yet.
	ErrNotLaunched = errors.New("not launched")
)

// NodeConfig is how to run one `atoll server`. Launch reads it each time,
// so a test may change Flags or Bootstrap between a stop and the next
// launch on the same data dir.
type NodeConfig struct {
	Bin        string   // the atoll binary; default: the one Main built
	ID         string   // --id; default n1
	Data       string   // --data; required
	Bootstrap  bool     // --bootstrap (a no-op once the data dir holds a cluster)
	AdminToken string   // --admin-token; "" lets a bootstrapping node make one (see ReadToken)
	Flags      []string // more server flags: --join, --role, --cluster-key, TLS files, limits
	Env        []string // more environment for the server, after this process's own
	CA         string   // the cluster CA file: the API is https and clients trust this CA

	RaftAddr, APIAddr, HTTPAddr string // default: a FreeAddr each

	Net Namespaces // network namespaces (a *Net); nil runs on loopback
	NS  string     // the namespace of Net to run in ("" runs where this process runs)

	LogPath string // output of every launch is appended there; "" keeps the last launch's in memory

	APIClient  *http.Client // API calls; default: trusts CA, dials through Net
	EdgeClient *http.Client // edge reads; default: follows no redirect, never decompresses, 30s timeout
}

// Namespaces runs commands in network namespaces and dials from a client
// namespace; *Net is one.
type Namespaces interface {
	Command(ctx context.Context, ns, name string, args ...string) *exec.Cmd
	Transport() *http.Transport
	ClientNS() string
}

// Node is one `atoll server` (its configuration) and its current process,
// if launched. Its methods are safe for concurrent use, except changing
// the NodeConfig fields, which a caller does while no process runs.
type Node struct {
	NodeConfig

	mu   sync.Mutex
	proc *Process
	out  *syncBuffer // the last launch's output when LogPath is ""
}

// NewNode fills cfg's defaults (free addresses, the built binary,
// clients) and returns the node, not launched.
func NewNode(cfg NodeConfig) (*Node, error) {
	if cfg.Data == "" {
		return nil, errors.New("atolltest: NodeConfig.Data is required")
	}
	if cfg.Bin == "" {
		cfg.Bin = builtBin
	}
	if cfg.Bin == "" {
		return nil, errors.New("atolltest: no atoll binary: set NodeConfig.Bin or run the tests through Main")
	}
	if cfg.ID == "" {
		cfg.ID = "n1"
	}
	for _, a := range []*string{&cfg.RaftAddr, &cfg.APIAddr, &cfg.HTTPAddr} {
		if *a != "" {
			continue
		}
		var err error
		if *a, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	if cfg.APIClient == nil {
		tr, err := cfg.transport()
		if err != nil {
			return nil, err
		}
		cfg.APIClient = &http.Client{Transport: tr}
	}
	if cfg.EdgeClient == nil {
		tr, err := cfg.transport()
		if err != nil {
			return nil, err
		}
		cfg.EdgeClient = &http.Client{Transport: tr, Timeout: 30 * time.Second, CheckRedirect: noRedirect}
	}
	return &Node{NodeConfig: cfg}, nil
}

// transport is a transport that dials through Net (when set) and trusts
// CA (when set), and leaves Content-Encoding alone.
func (cfg *NodeConfig) transport() (*http.Transport, error) {
	tr := &http.Transport{DisableCompression: true}
	if cfg.Net != nil {
		tr = cfg.Net.Transport()
	}
	if cfg.CA != "" {
		pem, err := os.ReadFile(cfg.CA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("atolltest: no certificate in %s", cfg.CA)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return tr, nil
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// serverArgs is the command line of `atoll server` for n.
func (n *Node) serverArgs() []string {
	args := []string{"server", "--id", n.ID, "--data", n.Data,
		"--raft-addr", n.RaftAddr, "--api-addr", n.APIAddr, "--http-addr", n.HTTPAddr}
	if n.Bootstrap {
		args = append(args, "--bootstrap")
	}
	if n.AdminToken != "" {
		args = append(args, "--admin-token", n.AdminToken)
	}
	return append(args, n.Flags...)
}

// command is name with args, in namespace ns of n's Net if there is one.
func (n *Node) command(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	if n.Net != nil {
		return n.Net.Command(ctx, ns, name, args...)
	}
	return exec.CommandContext(ctx, name, args...)
}

// Launch starts the server process and returns without waiting for it to
// answer (see WaitReady). A node is launched again on the same data dir
// after a stop or a crash.
func (n *Node) Launch() error {
	cmd := n.command(context.Background(), n.NS, n.Bin, n.serverArgs()...)
	// ATOLL_ACME=false: no test reaches a real CA (a test that runs its own
	// passes --acme, or ATOLL_ACME in Env, which comes later and wins); a
	// binary from before ACME ignores it.
	cmd.Env = append(append(os.Environ(), "ATOLL_ACME=false"), n.Env...)
	var out *syncBuffer
	var logFile *os.File
	if n.LogPath != "" {
		f, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		logFile = f
		cmd.Stdout, cmd.Stderr = f, f
	} else {
		out = &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
	}
	p, err := StartProcess(cmd)
	if logFile != nil {
		logFile.Close() // the child has its own descriptor
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", n.ID, err)
	}
	n.mu.Lock()
	n.proc, n.out = p, out
	n.mu.Unlock()
	// Connections kept alive to the previous process are dead.
	for _, c := range []*http.Client{n.APIClient, n.EdgeClient} {
		c.CloseIdleConnections()
	}
	return nil
}

func (n *Node) process() *Process {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Done is closed once the current process has exited (at once if the node
// was never launched).
func (n *Node) Done() <-chan struct{} {
	if p := n.process(); p != nil {
		return p.Done()
	}
	return closed
}

// Running reports whether the current process has not exited.
func (n *Node) Running() bool {
	select {
	case <-n.Done():
		return false
	default:
		return true
	}
}

// ExitCode is the current process's exit status once it has exited; -1
// while it runs, when a signal ended it, or if it was never launched.
func (n *Node) ExitCode() int {
	if p := n.process(); p != nil {
		return p.ExitCode()
	}
	return -1
}

// Pid is the current process's id, 0 if never launched.
func (n *Node) Pid() int {
	if p := n.process(); p != nil {
		return p.Pid()
	}
	return 0
}

// Signal sends sig to the process without waiting (SIGSTOP, SIGCONT).
func (n *Node) Signal(sig os.Signal) error {
	p := n.process()
	if p == nil {
		return ErrNotLaunched
	}
	return p.Signal(sig)
}

// Stop sends sig and waits until the process exits, sending SIGKILL after
// grace. It returns at once if no process runs.
func (n *Node) Stop(sig syscall.Signal, grace time.Duration) {
	if p := n.process(); p != nil {
		p.Stop(sig, grace)
	}
}

// Close stops the node as an operator would (SIGTERM, SIGKILL after 5s),
// for a Group.
func (n *Node) Close() error {
	n.Stop(syscall.SIGTERM, 5*time.Second)
	return nil
}

// WaitOutput waits up to d for the last launch's output to contain s and
// reports whether it does: a line a node logs as it answers a request may
// reach the pipe after the answer does.
func (n *Node) WaitOutput(s string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !strings.Contains(n.Output(), s) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// Output is what the last launch printed so far (the whole log file when
// LogPath is set).
func (n *Node) Output() string {
	if n.LogPath != "" {
		b, _ := os.ReadFile(n.LogPath)
		return string(b)
	}
	n.mu.Lock()
	out := n.out
	n.mu.Unlock()
	if out == nil {
		return ""
	}
	return out.String()
}

// APIURL is the base URL of the API: https when the node has a CA.
func (n *Node) APIURL() string {
	if n.CA != "" {
		return "https://" + n.APIAddr
	}
	return "http://" + n.APIAddr
}

// ReadToken returns the admin token: AdminToken, or the one a
// bootstrapping node wrote to its data dir.
func (n *Node) ReadToken() (string, error) {
	if n.AdminToken != "" {
		return n.AdminToken, nil
	}
	b, err := os.ReadFile(filepath.Join(n.Data, "token"))
	if err != nil {
		return "", fmt.Errorf("read token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// WaitReady polls path on the API (each try bounded to 3s) until it
// answers 200. It fails with ErrExited if the process ends meanwhile, or
// with ctx's error and the last answer.
func (n *Node) WaitReady(ctx context.Context, path string) error {
	last := "no answer"
	for {
		tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		status, body, err := n.API(tctx, "GET", path, "", "", nil)
		cancel()
		switch {
		case err == nil && status == http.StatusOK:
			return nil
		case err != nil:
			last = err.Error()
		default:
			last = fmt.Sprintf("%d %s", status, bytes.TrimSpace(body))
		}
		select {
		case <-n.Done():
			return fmt.Errorf("%s %w before %s answered 200%s", n.ID, ErrExited, path, n.logHint())
		case <-ctx.Done():
			return fmt.Errorf("%s: %s not 200: %w (last answer: %s)%s", n.ID, path, ctx.Err(), last, n.logHint())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (n *Node) logHint() string {
	if n.LogPath == "" {
		return ""
	}
	return " (see its log " + n.LogPath + ")"
}

// API calls the API with token ("" sends none) and returns the status and
// the body (at most 64 MiB).
func (n *Node) API(ctx context.Context, method, path, token, contentType string, body io.Reader) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, n.APIURL()+path, body)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := n.APIClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, b, err
}

// StatusError is an API answer with a status of 300 or more.
type StatusError struct {
	Method, Path string
	Status       int
	Body         []byte
}

func (e *StatusError) Error() string {
	body := bytes.TrimSpace(e.Body)
	if len(body) > 500 {
		body = body[len(body)-500:]
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), body)
}

// Call calls the API with the admin token (a body is sent as JSON) and
// decodes a JSON answer into out unless out is nil. A status of 300 or
// more is a *StatusError.
func (n *Node) Call(ctx context.Context, method, path string, body io.Reader, out any) error {
	token, err := n.ReadToken()
	if err != nil {
		return err
	}
	ctype := ""
	if body != nil {
		ctype = "application/json"
	}
	status, b, err := n.API(ctx, method, path, token, ctype, body)
	if err != nil {
		return err
	}
	if status >= 300 {
		return &StatusError{Method: method, Path: path, Status: status, Body: b}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// RunCLI runs `atoll args...` against n's API as token (ATOLL_API,
// ATOLL_TOKEN, ATOLL_CA; ATOLL_DATA is n's data dir, which the CLI reads
// only when the token is empty), from Net's client namespace when n has a
// Net. A non-zero exit is the result's Code, not an error.
func (n *Node) RunCLI(ctx context.Context, token string, args ...string) (CLIResult, error) {
	ns := ""
	if n.Net != nil {
		ns = n.Net.ClientNS()
	}
	cmd := n.command(ctx, ns, n.Bin, args...)
	cmd.Env = append(os.Environ(), "ATOLL_API="+n.APIURL(), "ATOLL_TOKEN="+token, "ATOLL_DATA="+n.Data, "ATOLL_CA="+n.CA)
	return RunCommand(cmd)
}

// Fetch makes one request to n's edge for path at host, with header
// name/value pairs (pairs with an empty value are left out), and returns
// the answer with its body read (as sent: not decompressed).
func (n *Node) Fetch(ctx context.Context, method, host, path string, hdr ...string) (*http.Response, []byte, error) {
	return Fetch(ctx, n.EdgeClient, method, "http://"+n.HTTPAddr+path, host, hdr...)
}

// syncBuffer is a bytes.Buffer that a process writes while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
