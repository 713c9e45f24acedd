package node

// variantsMade is the blob store's OnVariants: the store made the variants
// of a blob in the background after its upload was acknowledged (or after
// it arrived from a peer without them). The edge forgets what it learned of
// the blob without them, as after a scrub replaced it, so the next request
// sees the variants.
func (n *Node) variantsMade(hash string) {
	if e := n.edgeReady.Load(); e != nil {
		e.Invalidate(hash)
	}
}
