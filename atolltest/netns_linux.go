package atolltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var _ Namespaces = (*Net)(nil)

// Subnet is the /24 of the namespaces a Net makes: host N of the bridge is
// Subnet+"N", and exists only inside them.
const Subnet = "10.213.0."

// ClientHost is the last byte of the client namespace's address.
const ClientHost = 100

// Net is a set of network namespaces on one bridge, or loopback when they
// cannot be made (Enabled reports which, Reason says why not).
//
// The bridge lives in a namespace of its own; node i gets a namespace
// with eth0 = Subnet+i/24, whose peer is port v<i> of the bridge, and so
// does a client namespace (ClientHost). Commands run in a namespace with
// `ip netns exec`, which execs them (the pid is the command's own, so
// signals reach it); this process's HTTP clients dial from the client
// namespace (Transport). Cut sets a node's bridge port down: its packets
// are dropped, as in a real network split. Close deletes every namespace;
// NewNet first deletes those of earlier processes that died before their
// cleanup.
type Net struct {
	netns    bool
	reason   string // why not, on loopback
	prefix   string // namespace names: <prefix>-br, -cl, -n1...
	clientNS string
	created  []string
	self     *os.File // this process's own network namespace
	client   *os.File // the client namespace

	closeOnce sync.Once
}

// NewNet makes the bridge and a namespace for each of nodes nodes and for
// the client. Without root, without the ip command (iproute2) or on an
// architecture whose setns(2) number is unknown, it returns a loopback Net
// that says why.
func NewNet(nodes int) *Net {
	cn := &Net{prefix: fmt.Sprintf("atollc%d", os.Getpid())}
	if err := cn.setup(nodes); err != nil {
		cn.Close()
		return Loopback(err.Error())
	}
	return cn
}

// Loopback is a Net that makes no namespace: everything runs on loopback,
// for the reason given.
func Loopback(reason string) *Net {
	return &Net{prefix: fmt.Sprintf("atollc%d", os.Getpid()), reason: reason}
}

// Enabled reports whether the namespaces exist (false: loopback).
func (cn *Net) Enabled() bool { return cn.netns }

// Reason says why the Net is on loopback.
func (cn *Net) Reason() string { return cn.reason }

// Prefix is the start of the namespaces' names.
func (cn *Net) Prefix() string { return cn.prefix }

// NodeNS is node i's namespace ("" on loopback).
func (cn *Net) NodeNS(i int) string {
	if !cn.netns {
		return ""
	}
	return fmt.Sprintf("%s-n%d", cn.prefix, i)
}

// ClientNS is the namespace the clients run in ("" on loopback).
func (cn *Net) ClientNS() string { return cn.clientNS }

func (cn *Net) bridgeNS() string { return cn.prefix + "-br" }

func runIP(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// setup makes a bridge in a namespace of its own, and one namespace per
// node plus one for the clients, each with a veth pair to the bridge,
// Subnet+N/24 and loopback up.
func (cn *Net) setup(nodes int) error {
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("no ip command (iproute2)")
	}
	if setnsTrap[runtime.GOARCH] == 0 {
		return fmt.Errorf("setns(2) number unknown on %s", runtime.GOARCH)
	}
	removeStaleNamespaces()
	self, err := os.Open("/proc/self/ns/net")
	if err != nil {
		return err
	}
	cn.self = self
	br := cn.bridgeNS()
	if err := cn.addNS(br); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"-n", br, "link", "set", "lo", "up"},
		{"-n", br, "link", "add", "br0", "type", "bridge"},
		{"-n", br, "link", "set", "br0", "up"},
	} {
		if err := runIP(args...); err != nil {
			return err
		}
	}
	cn.netns = true // NodeNS names namespaces from here on
	for i := 1; i <= nodes; i++ {
		if err := cn.attach(cn.NodeNS(i), i); err != nil {
			return err
		}
	}
	cn.clientNS = cn.prefix + "-cl"
	if err := cn.attach(cn.clientNS, ClientHost); err != nil {
		return err
	}
	if cn.client, err = os.Open("/run/netns/" + cn.clientNS); err != nil {
		return err
	}
	return nil
}

func (cn *Net) addNS(name string) error {
	if err := runIP("netns", "add", name); err != nil {
		return err
	}
	cn.created = append(cn.created, name)
	return nil
}

// attach creates namespace ns with eth0 = Subnet+host/24, whose peer vN
// is a port of the bridge.
func (cn *Net) attach(ns string, host int) error {
	if err := cn.addNS(ns); err != nil {
		return err
	}
	br, port := cn.bridgeNS(), fmt.Sprintf("v%d", host)
	for _, args := range [][]string{
		{"-n", br, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", br, "link", "set", port, "master", "br0", "up"},
		{"-n", ns, "addr", "add", Subnet + strconv.Itoa(host) + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "link", "set", "lo", "up"},
	} {
		if err := runIP(args...); err != nil {
			return err
		}
	}
	return nil
}

// Cut drops every packet of node i: its port on the bridge goes down.
func (cn *Net) Cut(i int) error {
	return runIP("-n", cn.bridgeNS(), "link", "set", fmt.Sprintf("v%d", i), "down")
}

// Heal ends a Cut.
func (cn *Net) Heal(i int) error {
	return runIP("-n", cn.bridgeNS(), "link", "set", fmt.Sprintf("v%d", i), "up")
}

// Close deletes the namespaces (their veth pairs and the bridge go with
// them). It runs once; later calls do nothing.
func (cn *Net) Close() error {
	var errs []error
	cn.closeOnce.Do(func() {
		for _, ns := range slices.Backward(cn.created) {
			errs = append(errs, runIP("netns", "del", ns))
		}
		if cn.client != nil {
			cn.client.Close()
		}
		if cn.self != nil {
			cn.self.Close()
		}
	})
	return errors.Join(errs...)
}

var staleNSRe = regexp.MustCompile(`^atollc(\d+)-`)

// removeStaleNamespaces deletes the namespaces of Nets whose process is
// gone (killed before its cleanup ran).
func removeStaleNamespaces() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := staleNSRe.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		runIP("netns", "del", f[0])
	}
}

// Command runs name in namespace ns (ip netns exec, which execs it: the
// pid is name's own, so signals reach it), or directly on loopback or for
// ns "".
func (cn *Net) Command(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	if !cn.netns || ns == "" {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Transport is an HTTP transport whose connections start in the client
// namespace, and which leaves Content-Encoding alone.
func (cn *Net) Transport() *http.Transport {
	return &http.Transport{
		DialContext:         cn.Dial,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
}

// setnsTrap is the number of setns(2) by architecture (the frozen syscall
// package lacks it); on others a Net stays on loopback.
var setnsTrap = map[string]uintptr{"amd64": 308, "arm64": 268, "riscv64": 268, "386": 346, "arm": 375, "ppc64le": 350, "s390x": 339}

func setns(f *os.File) error {
	if _, _, e := syscall.Syscall(setnsTrap[runtime.GOARCH], f.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
		return e
	}
	return nil
}

// Dial opens a TCP connection from the client namespace: a goroutine
// locked to its thread enters the namespace, creates and connects the
// socket (which stays in the namespace it was made in), and leaves again.
// Should leaving fail, the thread stays locked and ends with the
// goroutine, so nothing else ever runs in the wrong namespace.
func (cn *Net) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 3 * time.Second}
	if !cn.netns {
		return d.DialContext(ctx, network, addr)
	}
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := setns(cn.client); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("enter the client namespace: %w", err)}
			return
		}
		c, err := d.DialContext(ctx, network, addr)
		if berr := setns(cn.self); berr != nil {
			if c != nil {
				c.Close()
			}
			ch <- result{nil, fmt.Errorf("leave the client namespace: %w", berr)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
