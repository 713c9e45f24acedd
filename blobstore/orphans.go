package blobstore

import "sync"

// orphanLedger names the blobs that may have variant files without their
// identity file in this process's life (DESIGN.md, I18), so that a Put,
// Import or PutBatch of a new blob looks for stale variants to remove only
// where some may be, instead of trying one unlink per encoding (three
// failed system calls) for every blob.
//
// What makes it exact: New's sweep leaves no variant without its identity
// (it fails New otherwise), and after New only these can leave one, each
// under the blob's lock, which the publishers hold too:
//   - Delete (and EvictLRU's deletion) and Quarantine, which take the
//     identity away before the variants: they mark the blob first and
//     clear it only once every variant file is gone;
//   - a publish that renamed variants and then failed and took them back
//     (best effort): it marks the blob.
//
// A variant never appears otherwise: the compressor and AcceptVariants
// install variants only while the identity is there (stillPending), and a
// publish renames a blob's variants just before its identity. A crash
// empties the ledger and New's sweep starts it over. A removal of stale
// variants that succeeds clears the blob.
//
// The ledger is small: a blob stays in it only after a failed removal or
// a failed publish.
type orphanLedger struct {
	mu sync.Mutex
	m  map[string]struct{}
}

// mark records that hash may have variant files without its identity.
func (l *orphanLedger) mark(hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string]struct{})
	}
	l.m[hash] = struct{}{}
}

// clear records that hash has no variant file without its identity.
func (l *orphanLedger) clear(hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, hash)
}

// has reports whether hash may have variant files without its identity.
func (l *orphanLedger) has(hash string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.m[hash]
	return ok
}
