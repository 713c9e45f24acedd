// Package scrub finds and replaces rotten blob copies on a node's disk.
// Every node re-reads the blobs it holds and checks them against their
// hash (blobstore.Store.VerifyPaced: identity bytes and every decompressed
// variant), at most Config.Rate bytes per second so serving keeps the disk,
// a full pass every Config.Interval, and on request (Scrubber.Request:
// POST /v1/nodes/{id}/scrub, `atoll node scrub ID`), which pre-empts a
// background pass.
//
// A corrupt copy is
//  1. quarantined (blobstore.Store.Quarantine): out of the serving path at
//     once (nobody can open it any more; its bytes are kept under
//     <data>/blobs/quarantine/ for an operator to look at);
//  2. forgotten by the edge (Edge.Invalidate);
//  3. replaced: fetched from the other holders (Holders.Fetch: owners
//     first in placement order, each transfer verified against the hash
//     as it arrives); or, when no other node has it and only a compressed
//     variant was damaged, stored again from its own identity bytes (Put
//     re-hashes them).
//
// Between 1 and 3 a visitor's request for the file fetches it the same way
// (read-through), so it gets the healthy bytes or a 503, never the corrupt
// ones. Corruption is caught outside the scrubber too: a blob fetched from
// a peer is verified as it arrives (blobstore.Import), and the node that
// received bad bytes asks the sender to check its copy at once
// (Scrubber.CheckLater, behind POST /v1/peer/verify), so it heals without
// waiting for its next pass.
//
// A background pass resumes after a restart where it stopped: the last blob
// it reached and the end of the last full pass are kept in
// Config.StateFile (<data>/scrub.json).
//
// The package owns the schedule, the pass status (atoll.ScrubStatus) and
// the check of one copy. It must never serve HTTP or talk to other nodes
// itself: node adapts its routes and its read-through fetch to it.
package scrub
