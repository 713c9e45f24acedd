package node

// Hooks of the blob store's background compression (blobstore DESIGN.md
// I14).

// variantsMade is the blob store's OnVariants: the store made the variants
// of a blob in the background after its upload was acknowledged (or after
// it arrived from a peer without them), found none worth keeping, or took
// those another owner sent. The edge forgets what it learned of the
// pending blob, as after a scrub replaced it, so the next request sees the
// variants and no longer compresses it per request; and the owner that
// compresses the blob for the cluster sends them to the other owners
// (variants.go).
func (n *Node) variantsMade(hash string) {
	n.invalidateEdge(hash)
	n.shipVariants(hash)
}

// corruptBeforeCompressing is the blob store's OnCorrupt: the identity
// bytes of a local copy no longer hash to its name (they rotted on disk
// after the upload), found while its variants were being made. The copy
// is checked, quarantined and replaced now, as a scrub would, rather than
// at the next scrub pass. A worker can find one while the node is still
// starting (New queues the blobs a crash left uncompressed): it waits
// until the node is up (the edge started last), or stops.
func (n *Node) corruptBeforeCompressing(hash string) {
	select {
	case <-n.ctx.Done():
		return
	case <-n.edgeUp:
	}
	res := n.scrub.Check(n.ctx, hash)
	n.log.Warn("corrupt copy found while compressing", "blob", hash, "corrupt", res.Corrupt, "repaired", res.Repaired)
}

// invalidateEdge makes the edge, once started, forget what it knows of a
// blob.
func (n *Node) invalidateEdge(hash string) {
	if e := n.edgeReady.Load(); e != nil {
		e.Invalidate(hash)
	}
}
