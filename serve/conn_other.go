//go:build !linux

package serve

import "net"

// NewListener returns ln: raw connections (conn.go) are Linux only.
func NewListener(ln net.Listener, writeBuffer int) net.Listener { return ln }
