package atolltest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
)

// ErrNoFreePort means every port of the range FreeAddr walks is taken or
// was handed out already.
var ErrNoFreePort = errors.New("no free port below the ephemeral range")

const portBase, portSpan = 20000, 12000

// ports remembers every port FreeAddr handed out in this process. A port is
// never handed out twice: a stopped node keeps its addresses for its
// restart, and its port is free in between, so a second node picking it
// would collide with the first one coming back. Ports are walked in order
// from a random start, so parallel test processes rarely meet.
var ports struct {
	sync.Mutex
	given map[int]bool
	next  int
}

// FreeAddr returns a loopback address (127.0.0.1:port) that was free a
// moment ago, and never one it returned before in this process. It picks
// ports below the kernel's ephemeral range (32768-60999 on Linux): a port
// the kernel hands out with ":0" can be taken again, between this check and
// the node's bind, by the local end of any outgoing connection of the
// process (a node's peers' HTTP clients make many).
func FreeAddr() (string, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.given == nil {
		ports.given = map[int]bool{}
		ports.next = rand.IntN(portSpan)
	}
	for range portSpan {
		port := portBase + ports.next
		ports.next = (ports.next + 1) % portSpan
		if ports.given[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		ports.given[port] = true
		return ln.Addr().String(), nil
	}
	return "", ErrNoFreePort
}
