// Package node runs one Atoll node: it owns the node's configuration, the
// start and stop order of its parts (blob store, Raft store, builder API,
// edge), the admin HTTP handlers (status, health, metrics) and the glue that
// implements the small interfaces builder and serve declare.
//
// Data directory layout (Config.DataDir):
//
//	node-id      this node's id, fixed at first start
//	token        the generated admin token (mode 0600), when none was given
//	raft/        Raft log, stable store, snapshots and the FSM's bbolt file
//	blobs/       the content-addressed blob store
//	tmp/         spool space for tar uploads
//
// A single node is the cluster of one: it bootstraps Raft with itself as the
// only voter, owns every blob, and serves every site from its own disk.
//
// Node must never serve a visitor from anything but local state: the edge
// reads the replicated metadata and local blobs only, so it keeps serving
// when the Raft leader is gone.
package node
