package serve

// Invalidate forgets what the Handler keeps in memory of blob hash: its
// Info and the bytes of its small representations. The next request for a
// file with that content asks Blobs again (Stat, then Open), so it sees
// the blob as it now is on disk: gone, or replaced by a fresh copy whose
// variants may differ.
//
// node calls it when its scrubber quarantines a corrupt copy and once the
// copy is replaced. Memory never held the corrupt bytes themselves (bytes
// are checked against the hash when loaded, see cache.go), so Invalidate is
// not what keeps them from being served: the quarantine is, since a
// quarantined blob can no longer be opened. It makes the edge drop what it
// learned from the copy it can no longer trust. Routes that already point
// at the old entry keep its Info, which stays true of the content (a
// variant missing from the new copy falls back to the identity bytes) but
// no longer its bytes.
func (h *Handler) Invalidate(hash string) {
	if h.notify == nil {
		return // nothing is cached
	}
	if be := h.blobCache.get(hash); be != nil {
		h.blobCache.drop(be)
	}
}
