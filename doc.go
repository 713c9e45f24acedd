// Package atoll is Atoll's vocabulary: the domain types (Site, Deploy, File,
// Node, Token, Cert), the validators every layer applies to them (site
// names, manifest paths, domains, retention, hashes), the sentinel errors
// that say why something was refused, and the JSON shapes of the HTTP API
// (wire.go).
//
// It depends on the standard library alone and must stay that way: the
// replicated store (raft), the builder API (builder), the edge (serve), the
// node that wires them (node) and the Go client (builder/client) all import
// it, and a program that uses only the client must not link Raft, bbolt,
// fasthttp or a compressor. It holds no state and does no I/O.
//
// One rule lives in one place: the API checks a request with the same
// function the state machine applies to the command that request becomes,
// so the two cannot disagree. Changing a validator changes what the state
// machine accepts when it replays its log: a rule may be made stricter for
// new requests in builder, never in the state machine's replay of entries
// it once accepted.
package atoll
