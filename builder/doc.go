// Package builder is Atoll's builder API: the net/http handlers through which
// builders create sites, upload deploys, publish them and roll back. Their
// JSON shapes are the atoll package's wire types, which node's own routes
// and the Go client in builder/client share. The API exports its routes as
// data (Routes: method, pattern, Scope, handler); node mounts them in its
// one route table next to its admin and peer routes, putting each behind
// its scope's guard (Guard, RequireAuth, RequireSite, RequireToken), and
// reuses WriteJSON and WriteError. Register mounts them alone, for tests.
//
// The package reads and writes replicated metadata only through Meta (raft
// commands in, FSM reads out) and file contents only through Blobs (node
// places them on their owners). It never touches disk except to spool a tar
// upload in Config.TempDir, and it knows nothing of Raft, placement or
// serving.
//
// # Routes
//
// Every route answers JSON and needs "Authorization: Bearer <token>", one of:
//
//   - the admin token: its SHA-256 is the hash the cluster records
//     (Meta.AdminTokenHash), the only place it lives; PUT /v1/admin-token
//     replaces it, and every node refuses the old one once applied. It may
//     do everything.
//   - a deploy token ("atl_site_" and 64 hex digits), made with POST
//     /v1/tokens and scoped to one site. The cluster stores only its
//     SHA-256 (atoll.Token); a request's token is hashed, looked up in the
//     hash index (Meta.TokenByHash) and the stored hash compared in constant
//     time. It may create deploys on its site (manifest or tar), upload
//     blobs, get, finalize and publish (so roll back) its site's deploys,
//     list them, and read its site. Anything else, including node's routes
//     behind RequireAuth, is a 403 "this token is scoped to site X".
//     Uploading blobs is open to it because blobs are content-addressed and
//     no API route reads them back: a blob only serves where a deploy's
//     manifest names it. Revoking the token, or deleting its site, locks it
//     out on every node once applied (401).
//
// A missing or unknown token is a 401 (WWW-Authenticate: Bearer); every
// comparison takes constant time; tokens are never logged (token ids are);
// with no admin token configured anywhere every request is refused. The
// handler of a route finds who called with CallerFrom.
//
//	POST   /v1/sites                   {"name","domains":[...],"retain":N} -> 201 atoll.Site
//	GET    /v1/sites                   -> 200 {"sites":[...]} by name
//	GET    /v1/sites/{site}            -> 200 atoll.Site
//	PATCH  /v1/sites/{site}            {"domains":[...],"retain":N}, both optional -> 200 atoll.Site
//	DELETE /v1/sites/{site}            -> 204
//	POST   /v1/sites/{site}/deploys    application/json {"files":{"/path":"<sha256>"}}
//	                                   -> 201 DeployResponse with "required"
//	POST   /v1/sites/{site}/deploys[?publish=true]
//	                                   application/x-tar or application/gzip (tar.gz) -> 201 DeployResponse
//	GET    /v1/sites/{site}/deploys    -> 200 {"deploys":[...]} newest first
//	PUT    /v1/blobs/{sha256}          body = file bytes -> 201 {"hash","size"} (200 if already stored)
//	GET    /v1/deploys/{id}            -> 200 DeployResponse
//	GET    /v1/deploys/{id}/route?path=P -> 200 RouteResponse (what the edge does for P)
//	POST   /v1/deploys/{id}/finalize   -> 200 DeployResponse (ready), or 409 {"error","missing":[...]}
//	POST   /v1/deploys/{id}/publish    -> 200 DeployResponse (published), or 409 {"error","missing":[...]}
//	POST   /v1/tokens                  {"site","name"} -> 201 {"id","site","name","created","token"} (admin)
//	GET    /v1/tokens                  -> 200 {"tokens":[{"id","site","name","created"}]} by id (admin)
//	DELETE /v1/tokens/{id}             -> 204 (admin)
//	PUT    /v1/admin-token             {"token"} -> 204 (admin)
//	PUT    /v1/sites/{site}/certs/{domain}
//	                                   {"cert":"<PEM chain>","key":"<PEM key>"} -> 200 CertInfo (admin)
//	GET    /v1/sites/{site}/certs      -> 200 {"certs":[CertInfo...]} by domain, never keys (admin)
//	DELETE /v1/sites/{site}/certs/{domain} -> 204 (admin)
//
// Certificates (certs.go) are for a site's custom domains, served by every
// edge's HTTPS listener by SNI. A PUT is refused unless the chain and key
// parse, the key is the leaf's, the leaf covers the domain and has not
// expired, and the domain is one of the site's (404 otherwise). They live
// in the replicated state (raft.PutCert); removing the domain from the site
// or deleting the site drops them. With Config.SealCertKey the private key
// is sealed before it is applied, so the log and the state never hold it
// in the clear; the reader opens it (node's edge). The routes need Meta to
// implement CertMeta (501 otherwise).
//
// Errors are {"error": "<one line a user can act on>"} with a fitting status:
// 400 bad input (names, paths, hashes, JSON, archives), 401 auth, 403 a
// deploy token outside its site, 404 unknown
// site or deploy, 409 name or domain taken and blobs missing, 413 over a
// limit, 415 unsupported Content-Type, 429 the site has its limit of
// deploys uploading, 503 (with Retry-After) when the cluster has no leader,
// 500 for anything else (logged, not shown).
//
// Site limits (limits.go): each site's deploys are held to
// atoll.SiteLimits, Config's defaults or the site's own (set by an admin
// with PATCH): bytes per deploy, deploys uploading at once (checked here
// and again by the FSM as it applies CreateDeploy, so it holds across API
// nodes), files per deploy. Paths atoll.Published refuses (dot-files) are left out of every
// deploy and counted in the answer's "skipped".
//
// # Deploys
//
// Digest flow: the manifest is parsed as a stream (a million entries never
// sit in memory twice), and every path goes through atoll.CleanPath, every
// hash through atoll.ValidHash, duplicates after normalization ("/a" and "a",
// or a JSON key given twice) are refused, dot-files dropped, and the file
// count is bounded, all before the first command is applied: a bad request leaves nothing behind.
// The answer's "required" lists (sorted, unique) the hashes Blobs.Stat does
// not find; if there are none the deploy is ready at once. The id is 10
// random characters of [a-z0-9] drawn before CreateDeploy, so a retried
// command is recognizably the same deploy; the manifest follows as
// raft.BatchFiles batches, each a log entry under raft.MaxBatchBytes.
// From atoll.LevelDeployBase a deploy of a site with a live deploy is
// recorded from it (base.go): CreateDeploy names the live deploy as base
// with the paths to leave out, only the entries that differ follow, and
// only their blobs are checked at create.
//
// One-shot tar: the body is spooled to a temp file (bounded by MaxTarBytes,
// and by Config.Room: asked for the announced length before, and every
// SpoolCheckBytes while it streams, so a spool never eats into the space
// the node keeps free; 507 and the file removed otherwise), then the whole archive is read once to check it (only regular files and
// directories; a leading "./" is stripped; links, devices, FIFOs, sparse
// files, absolute names, ".." and duplicates are refused naming the member;
// pax and GNU long-name headers are handled by archive/tar and pax global
// headers skipped; a corrupt tar or gzip stream is a 400) and hash every
// file, and only then read a second time to store the blobs the cluster
// lacks, each once. Per-file and total decompressed sizes are bounded by
// MaxBlobBytes and MaxTarBytes, and the published files by the site's bytes
// per deploy, as the stream is read, so a small gzip cannot expand without
// end.
// The deploy is recorded ready (and published with ?publish=true).
//
// Finalize and publish check every blob of the manifest with Blobs.Stat; a
// missing one is a 409 listing them all. Publish checks again even for a
// deploy that was ready before, so content lost since is never put live;
// publishing an older retained deploy is the rollback.
//
// # Choices
//
//   - Answers to writes are built from the commands just applied rather than
//     read back, so they are right even when this node (a follower that
//     forwarded the write) has not applied them yet.
//   - The commands recording a deploy run on a context detached from the
//     request: a client hanging up halfway does not leave a half-written
//     manifest. If a command fails halfway the deploy is marked failed.
//   - Custom domains are lowercased, de-duplicated and must be host names;
//     domains under Config.Domain are refused because they would shadow
//     <site>.<domain> hosts.
//   - Config.Domain is the serving domain, so that Config.SiteURL receives a
//     full host ("demo.localhost", "<id>--demo.localhost").
package builder
