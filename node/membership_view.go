package node

// Membership identifies the owners of every blob: the replication factor
// and the active core nodes. builder keeps a deploy's create-time "stored
// on a majority of the owners" answer only while it is unchanged
// (builder/confirmed.go).
func (b blobs) Membership() string { return b.n.placementKey() }
