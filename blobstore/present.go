package blobstore

// Present returns the blobs among hashes that the store holds, with their
// sizes: what a node answers a peer asking which blobs it has. Invalid
// names are not held.
func (s *Store) Present(hashes []string) map[string]int64 {
	present := make(map[string]int64)
	for _, h := range hashes {
		if info, err := s.Stat(h); err == nil {
			present[h] = info.Size
		}
	}
	return present
}
