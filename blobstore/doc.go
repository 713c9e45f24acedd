// Package blobstore is a node's local, content-addressed store of blobs.
//
// A blob is the content of one file, named by the lowercase hex SHA-256 of its
// bytes. The store owns, on one local disk:
//
//   - atomic, durable writes: a blob is streamed into a temp file while it is
//     hashed, rejected when the hash is not the one the caller expected, and
//     made visible by a rename only once it is fsynced (see DESIGN.md in
//     this folder for the exact order); PutBatch stores many blobs with
//     one group commit, all or none of them (putbatch.go, DESIGN.md I16);
//   - compressed variants, computed by background workers after Put (or an
//     Import without variants) has answered, or taken from another holder
//     that made them (AcceptVariants, after a bounded wait the caller sets
//     with Config.VariantsWait; ExportVariants sends them):
//     brotli ("br"), zstd ("zstd") and gzip ("gzip"), each kept only when
//     it saves at least ~5%; content that is tiny or already compressed
//     (images, archives, fonts, audio, video) is not recompressed. Until
//     they exist the blob has only its identity bytes; a pending marker
//     makes sure a crash does not leave it so (background.go, DESIGN.md
//     I14), and Config.OnVariants tells the caller when they appear;
//   - reads for the serving path: Stat (answered from a small bounded
//     in-memory cache), Has, and Open of the identity bytes or of a variant;
//   - Delete, Walk over every complete blob, Verify (re-hash the identity
//     bytes and every variant's decompressed bytes; VerifyPaced at a rate
//     the caller sets) and Quarantine (move a corrupt copy out of service,
//     keeping its bytes for inspection), the building blocks of garbage
//     collection, repair and scrubbing;
//   - a full disk: writes fail with ErrNoSpace, nothing half-written stays,
//     and below Config.MinFreeBytes of free space writes are refused
//     before they start, so the node's metadata keeps room (space.go);
//   - moving a blob between nodes with the variants its sender made: Export
//     streams identity and variants with a header describing them (the
//     transfer format, see BlobHeader); Import stores such a stream with
//     Put's guarantees, verifying the identity bytes against the name and
//     each variant against the identity as they arrive, and never
//     compresses anything;
//   - ImportSmall, for a small blob a node wants in memory at once
//     (Received), and Present, what a node answers a peer asking which
//     blobs it holds;
//   - cache accounting: the bytes every blob takes and when it was last
//     opened, kept in memory, so that Usage is cheap and EvictLRU can delete
//     the least recently used copies a node does not need to keep.
//
// On disk, under Config.Dir:
//
//	<dir>/ab/<hash>       identity bytes; its presence means the blob is complete
//	<dir>/ab/<hash>.br    brotli variant
//	<dir>/ab/<hash>.zst   zstd variant
//	<dir>/ab/<hash>.gz    gzip variant
//	<dir>/ab/<hash>.pending  the variants are still to be made
//	<dir>/temp/            temp files; made anew by New (DESIGN.md, "Placement of the temp folder")
//	<dir>/quarantine/     corrupt copies Quarantine took out of service
//
// where ab is the first two hex digits of the hash. New creates the 256
// shard folders (and makes them durable) when they are missing.
//
// What the package must never do: speak HTTP, as a server or a client (the
// peer protocol that moves blobs between nodes is package peer, built on
// Export, Import, ImportCache, ImportSmall and Present), know about raft or
// the metadata it replicates, or about placement, owners and replication
// policy. Deciding which blobs a node should hold, which peer to push to or
// fetch from, which copies are evictable, and replacing corrupt ones belong
// to package node; blobstore reports what it holds and whether it is
// intact, and stores or exports one blob's transfer when told to.
//
// A Store is safe for concurrent use by multiple goroutines, and by one
// process per directory: two processes sharing a directory are not supported
// (New replaces the temp folder another process may be writing into).
package blobstore
