package serve

// Invalidate forgets what the Handler keeps in memory of blob hash: its
// Info and the bytes of its small representations. The next request for a
// file with that content asks Blobs again (Stat, then Open), so it sees
// the blob as it now is on disk: gone, or replaced by a fresh copy whose
// variants may differ.
//
// node calls it when its scrubber quarantines a corrupt copy and once the
// copy is replaced, and when the blob store has made a blob's compressed
// variants in the background (after the upload was acknowledged), so the
// edge starts serving them. Memory never held the corrupt bytes themselves (bytes
// are checked against the hash when loaded, see cache.go), so Invalidate is
// not what keeps them from being served: the quarantine is, since a
// quarantined blob can no longer be opened. It makes the edge drop what it
// learned from the copy it can no longer trust. Routes that already point
// at the old entry see it dropped and ask Blobs again on their next
// request (one atomic load per request while the entry is current).
func (h *Handler) Invalidate(hash string) {
	if h.notify == nil {
		return // nothing is cached
	}
	if be := h.blobCache.get(hash); be != nil {
		h.blobCache.drop(be)
	}
}
