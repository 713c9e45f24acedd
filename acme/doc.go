// Package acme keeps what an ACME client needs (accounts, certificates and
// their keys, challenge tokens, order locks) in Atoll's replicated state,
// so that a cluster orders one certificate per name whichever node starts
// the order, and every node can answer the CA's challenge and serve the
// certificate.
//
// Storage implements certmagic.Storage over raft's ACME store (PutACME,
// DeleteACME, LockACME, UnlockACME; see raft/acme.go): writes are Raft
// commands, reads are local reads of the node's applied state, and Lock is
// a lease held through Raft (LockTTL, renewed every LockTTL/3 while held),
// so that a node that dies holding it frees it when the lease runs out.
// Values whose key ends in ".key" (private keys) are sealed with a key
// derived from the cluster key (raft.SealCertKey, bound to the storage
// key) before they are proposed, and opened when read.
//
// It never orders anything by itself and never touches the edge: node
// wires a certmagic.Config over a Storage, and the edge reads challenge
// tokens and certificates through it.
package acme
