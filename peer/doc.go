// Package peer is the node-to-node protocol of an Atoll cluster: its
// paths, headers and bodies, its client (Client), its one error type
// (Error), its retry policy (Backoff) and the handlers of the blob
// endpoints (PutBlobHandler, GetBlobHandler, HasHandler,
// PutVariantsHandler, PutBatchHandler). Package node
// serves the other endpoints and registers all of them in its route table
// behind the peer guard; package blobstore stores what moves.
//
// # Endpoints
//
// Every endpoint is on a node's API listener, at the host:port the node
// table records as the node's api_addr:
//
//	PUT  /v1/peer/blobs/{hash}  body: a blob transfer (blobstore.BlobHeader,
//	     Export), header HeaderBlob
//	     -> 201 PushResponse, sent only once the blob is fsynced; a node that
//	        holds the blob already reads the body and answers 201 too
//	GET  /v1/peer/blobs/{hash}
//	     -> 200, body: a blob transfer, header HeaderBlob, Content-Length;
//	        404 if the node does not hold the blob (it never fetches it
//	        elsewhere: the asking node walks the sources itself)
//	PUT  /v1/peer/variants/{hash}  header HeaderBlob; body: the variants
//	     only (VariantsPath): the variants another owner made of a blob
//	     the node holds pending
//	     -> 200 PushResponse once they are verified and durable; 404 if
//	        the node does not hold the blob; 400 for a variant that does
//	        not decompress to the blob's bytes
//	POST /v1/peer/blobs   body: a blob batch (atoll.BlobBatchContentType:
//	     identity bytes only), at most MaxBatchBlobs blobs, MaxBatchBytes
//	     -> 201 BatchResponse once every blob is fsynced (one group
//	        commit); 400 and nothing stored when one blob is bad; 404 from
//	        a node that predates it (PushBatch: ErrNoBatch, push blob by
//	        blob)
//	POST /v1/peer/has     body: HasRequest, at most MaxHasHashes hashes
//	     -> 200 HasResponse: the hashes held, with their sizes
//	POST /v1/peer/apply   body: an encoded raft.Command, forwarded by a
//	     follower to the leader
//	     -> 200 ApplyResponse (the log index to wait for); 503 kind
//	        not_leader on a node that does not lead; 409 with the kind of
//	        the state machine's rejection; 400 (kind invalid or unknown)
//	        for a command it cannot decode; 500 for any other failure
//	POST /v1/peer/fetch   body: HashList -> 200 FetchResponse: the node
//	     pulls the blobs from their holders (repair)
//	GET  /v1/peer/stats   -> 200 Stats: what the node says of itself,
//	     with its version and the highest feature level its binary knows
//	     (absent from a node from before feature levels: Stats.Binary)
//	GET  /v1/peer/scrub   -> atoll.ScrubStatus of the running or last pass
//	POST /v1/peer/scrub?wait=20s -> starts a pass, waits up to wait: 200
//	     when it is over, 202 while it runs
//	POST /v1/peer/verify  body: HashList -> 202: the node checks its copies
//	     now (a peer received bytes from it that did not match)
//	GET  /v1/peer/member/{id} -> 200 MemberResponse: whether the node's
//	     replicated state lists node id as a member (asked by a node that
//	     hears from no leader: was it removed meanwhile?)
//	GET  /v1/peer/log?after=N -> 200, a stream of LogFrames (Feeder,
//	     log.go) to a fed edge: the committed entries after N, a
//	     keep-alive each LogKeepAlive; 410 when the log no longer holds N
//	     (Client.Log: ErrLogGone); 404 on a fed edge; 503 past
//	     MaxLogStreams
//	GET  /v1/peer/snapshot -> 200, the node's state (raft snapshot format)
//	POST /v1/nodes        body: atoll.JoinRequest -> 201: a node joining
//	     by itself, with the cluster key instead of an admin token
//
// # Authentication
//
// Every request carries the cluster's shared key in HeaderClusterKey; a
// node answers 403 without it, or when it was started without a key (peer
// traffic disabled), and never lets a builder token in. When the cluster
// runs on mutual TLS (node --tls-cert, --tls-key, --tls-ca), every call
// goes to https://<api_addr>, presents the node's certificate and verifies
// the peer's against the cluster CA; a peer request, and a join by cluster
// key, without a client certificate that chains to the CA is a 403 even
// with the right key.
//
// Every request also carries the caller's version (HeaderVersion) and the
// highest feature level its binary knows (HeaderFeatureLevel): a join is
// judged by them (SenderBinary; none means a node from before feature
// levels, level 1). Fields added to these messages are ignored by older
// nodes, which decode JSON leniently; JoinRequest is decoded strictly by
// every release, so what a joiner adds goes in headers.
//
// # Errors
//
// A non-2xx answer has the body {"error": "<message>"}, plus "kind" on
// /v1/peer/apply naming the rejection (KindOf). Client returns it as an
// *Error, which matches with errors.Is the sentinel its kind names or, for
// answers without a kind, the one of its status: 404 atoll.ErrNotFound and
// blobstore.ErrNotFound, 409 atoll.ErrConflict, 400 atoll.ErrInvalid, 507
// blobstore.ErrNoSpace (the receiver's disk is full). A request that got no
// answer at all fails with an error wrapping ErrUnreachable. On PUT, an
// Import error wrapping blobstore.ErrInvalidHash, ErrMalformed or
// ErrHashMismatch is the sender's fault (400), ErrNoSpace the receiver's
// full disk (507), any other the receiver's problem (500).
//
// # Retries
//
// Client makes one attempt per call: a transfer cut halfway is the
// caller's to retry (bounded by the ctx it passes). The callers that retry
// (a write forwarded to the leader during an election, a node joining a
// cluster that is still starting) do it with Backoff.Retry, which waits
// between attempts, doubling the wait up to a bound, until the call
// succeeds, fails for good, or the ctx ends. Every call is idempotent on
// the serving side (a blob pushed twice, a command applied twice, a node
// joining twice), so a retry after an unknown outcome is safe.
//
// # Down peers
//
// A Client with a Health remembers which peers did not answer: the first
// call to a peer that times out (or cannot be dialled) marks it down, the
// calls after it fail at once with ErrDown (which wraps ErrUnreachable, so
// callers treat them as today's unreachable peer) instead of each waiting
// for its own timeout, and a background probe (Ping: GET /healthz, any
// answer counts) marks it up again once it answers. A frozen node thus
// costs one timeout, not one per call.
//
// What the package must never do: decide which node to call or which blob
// to move (placement, repair and scrub are node's), hold state across
// calls beyond its HTTP connections and its Health view, or read a store other than through
// the small interfaces its functions take.
package peer
