// Package pki owns the certificates of a cluster's mutual TLS: the CA
// behind `atoll certs init` (CA, NewCA, LoadCA, Init), and a node's
// identity in the cluster (LoadCluster): its certificate checked against
// the cluster CA, and the tls.Config of each path that uses it (Raft, the
// API listener, outgoing peer calls).
//
// It only reads and writes PEM files and builds tls.Configs. It must never
// listen, dial or decide who may call what: node wires the configs into its
// listeners and clients and checks peer certificates on its routes. The
// certificates of sites' custom domains (edge HTTPS, by SNI) are node's,
// not this package's.
package pki

import "errors"

// ErrInvalid wraps every refusal of what a caller gave: node names that
// are no file-safe ids, no names at all.
var ErrInvalid = errors.New("invalid configuration")
