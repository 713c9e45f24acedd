package atolltest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one started program. It runs in its own process group (a
// stop reaches the children it forks, such as nginx's workers) and, on
// Linux, is killed if the process that started it dies first.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// StartProcess starts cmd and reaps it in the background; Done is closed
// once it has exited.
func StartProcess(cmd *exec.Cmd) (*Process, error) {
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitCode is the process's exit status once Done is closed; -1 while it
// runs or when a signal ended it.
func (p *Process) ExitCode() int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Signal sends sig to the process alone, without waiting.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop sends sig to the process group and waits until the process exits;
// after grace it sends SIGKILL to the group and waits for that. It returns
// at once for a process that has exited already.
func (p *Process) Stop(sig syscall.Signal, grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	pgid := p.Pid()
	syscall.Kill(-pgid, sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// Close stops the process as an operator would: SIGTERM, SIGKILL after
// five seconds.
func (p *Process) Close() error {
	p.Stop(syscall.SIGTERM, 5*time.Second)
	return nil
}

// Group stops, on Close, everything added to it, the last added first. A
// program adds each process or node it starts, and closes the group
// whatever happens (also on a signal) so that nothing outlives it.
type Group struct {
	mu   sync.Mutex
	list []io.Closer
}

// Add makes c part of the group.
func (g *Group) Add(c io.Closer) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.list = append(g.list, c)
}

// Close closes every member, the last added first, and forgets them.
func (g *Group) Close() error {
	g.mu.Lock()
	list := g.list
	g.list = nil
	g.mu.Unlock()
	var errs []error
	for _, c := range slices.Backward(list) {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// CLIResult is what one run of a command printed and how it exited.
type CLIResult struct {
	Args           []string // the command line, program first
	Stdout, Stderr string
	Code           int // exit code; 0 is success
}

// Err is nil for exit code 0, else an error with the command, the code
// and its stderr.
func (r CLIResult) Err() error {
	if r.Code == 0 {
		return nil
	}
	return &ExitError{Result: r}
}

// ExitError is a command that ran and exited with a code other than 0.
type ExitError struct{ Result CLIResult }

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s: exit %d: %s", strings.Join(e.Result.Args, " "), e.Result.Code, strings.TrimSpace(e.Result.Stderr))
}

// RunCommand runs cmd to its end, capturing its output. The error is for a
// command that could not run at all; a non-zero exit is the result's Code.
func RunCommand(cmd *exec.Cmd) (CLIResult, error) {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := CLIResult{Args: cmd.Args, Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	case err != nil:
		return res, err
	}
	return res, nil
}
