package node

// PlayFeatureLevel makes the nodes started until restore is called tell
// the cluster that their binary knows feature levels up to level only, as
// a binary of an older release does.
func PlayFeatureLevel(level int) (restore func()) {
	old := knownFeatureLevel
	knownFeatureLevel = level
	return func() { knownFeatureLevel = old }
}

// VariantBatches returns how many batches of variants this node sent that
// their receiver answered.
func (n *Node) VariantBatches() int64 { return n.variants.batches.Load() }

// VariantsSent returns how many blobs' variants this node sent that their
// receiver stored (or needed no longer).
func (n *Node) VariantsSent() int64 { return n.variants.sent.Load() }
