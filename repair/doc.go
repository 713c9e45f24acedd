// Package repair (anti-entropy) keeps every referenced blob at R copies on
// its current owners (package placement). It runs on every membership
// change and every Config.Interval, in two halves:
//
//   - every node checks the blobs it holds but does not own (LocalPass):
//     it pushes each to the owners that lack it, and once all owners hold
//     it, confirms its own copy (a cache copy, evicted when space is
//     needed); blobs no retained deploy references are deleted after
//     Config.GCGrace. How many of its referenced blobs still wait for
//     their owners is the node's drain progress (DrainLeft);
//   - the leader takes a census (Census): it asks every owner which of the
//     blobs it owns it really holds (not what it should hold), and tells
//     each owner that lacks some to pull them from the other holders. The
//     census is what `atoll status` reports as under-replicated and
//     missing counts (atoll.RepairReport, POST /v1/repair).
//
// Both halves start from the blobs every retained deploy references
// (Referenced): one walk of the replicated state's manifests when Meta
// offers it (raft.FSM.ReferencedBlobs), a read per site and deploy
// otherwise. Both halves gather (ask the nodes what they hold), then decide with a
// pure function of what they heard (Decide, handOff), then execute the
// plan in a thin loop.
//
// The package owns those passes, garbage collection of unreferenced
// blobs, the last census report and the drain progress. It must never
// speak HTTP or decide placement itself: node gives it the peer calls
// (Peers), the local store (Local), the replicated state (Meta), the cache
// confirmations (Cache) and the current placement view.
package repair
