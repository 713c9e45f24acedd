package serve

// FetchedBlobs is implemented by Blobs that may hold a small blob's bytes
// in memory for a moment: an edge that has just fetched the blob from its
// owners and is still writing its copy to disk. The Handler asks Fetched
// before it opens a file for a representation it keeps in memory (at most
// MaxFetchedSize bytes), so the request that caused the fetch is answered
// without waiting for the disk. The bytes need not have been checked: the
// Handler checks them against the blob's hash, as it checks what it reads
// from a file, and never serves ones that fail (a variant that fails is
// replaced by the identity bytes). The Handler copies what it keeps and
// never modifies the slice.
type FetchedBlobs interface {
	// Fetched returns the bytes of representation coding ("" for the
	// identity bytes) of blob hash if they are in memory, else false.
	Fetched(hash, coding string) ([]byte, bool)
}

// MaxFetchedSize is the largest representation the Handler keeps in memory,
// and so the largest it asks FetchedBlobs for.
const MaxFetchedSize = maxCachedFile

// fetchedBytes returns what h.blobs holds in memory of representation
// coding of hash when it has exactly size bytes, else nil.
func (h *Handler) fetchedBytes(hash, coding string, size int64) []byte {
	fb, ok := h.blobs.(FetchedBlobs)
	if !ok {
		return nil
	}
	b, ok := fb.Fetched(hash, coding)
	if !ok || int64(len(b)) != size {
		return nil
	}
	return append([]byte(nil), b...)
}
