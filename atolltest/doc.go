// Package atolltest runs the real atoll binary the way a user or an
// operator would, for the end-to-end tests of cmd/atoll and for the
// benchmark driver bench/cmd/atoll-bench: it builds the binary, starts
// `atoll server` processes on free loopback ports (or in network
// namespaces), waits until they answer, signals, restarts and stops them,
// runs the CLI against them, calls their JSON API and reads their edge.
// It also holds the small helpers every test package shares: SHA256Hex,
// WriteTree, Tar and Decode.
//
// Two layers. Node, Process, Group, Net and the free functions return
// errors and take a context where they block, so a normal program (the
// benchmark) uses them and stops everything with an explicit Close. Server
// wraps a Node for a test: its methods fail the test instead of returning
// an error, and the process is killed when the test ends (t.Cleanup).
//
// The package must never import another package of this module: the
// in-package tests of node and builder import it (for SHA256Hex), and
// node/nodetest builds on its port allocator (FreeAddr).
package atolltest
