// Package serve is Atoll's edge: the fasthttp handler that answers visitors
// with the files of published deploys, from metadata replicated to every node
// (a Catalog) and content on the node's disk (Blobs). It owns the public
// serving contract: Host -> site -> deploy -> file, and the HTTP semantics
// around it. It never writes metadata or blobs, never needs the Raft
// leader, and never touches a file system path built from a request.
//
// # Hosts
//
// The host is taken from the request (the Host header, or the authority of
// an absolute-form request target), lowercased, without its port and
// without the trailing dot of a fully qualified name. With Config.Domain
// set to "atoll.example":
//
//   - blog.atoll.example serves site "blog"'s published deploy.
//   - abc123--blog.atoll.example serves deploy "abc123" of site "blog" (a
//     preview), provided the deploy belongs to that site and is complete:
//     state ready, published or superseded. Uploading and failed deploys
//     are never served.
//   - Any other host is looked up among the sites' custom domains
//     (Catalog.SiteByDomain) and serves that site's published deploy. Only
//     one label directly under Domain is a site or preview label;
//     x.blog.atoll.example and atoll.example itself are custom-domain
//     lookups.
//   - An unknown host or site, a site with nothing published, a host that
//     is not a DNS name (an IP literal in brackets, stray bytes) answers a
//     plain 404.
//
// The deploy is resolved once per request, and every lookup of that request
// (the file, its index.html or .html form, the 404 page) reads that same
// deploy. A publish or a rollback switches the live deploy atomically: a
// visitor gets the old deploy or the new one, never a mix.
//
// # Paths
//
// The path is the request's decoded path (fasthttp percent-decodes it once
// and removes "." and ".." segments and repeated slashes; the edge cleans it
// again so its safety does not depend on server settings). It is then looked
// up verbatim in the deploy's manifest, so /a%20b/%C3%BC.txt finds the
// manifest path "/a b/ü.txt". The query string plays no part in the lookup.
//
//   - A path ending in "/" serves its index.html: / is /index.html, /docs/
//     is /docs/index.html.
//   - /docs, when the manifest has no /docs but has /docs/index.html, is
//     answered with 301 Moved Permanently to /docs/ (query string kept).
//     The Location is a path on the same host, percent-escaped.
//   - /about, when the manifest has no /about (nor /about/index.html),
//     serves /about.html if it exists ("clean URLs").
//   - Anything else is missing: the deploy's /404.html is served with status
//     404, or, when the deploy has none, the plain text "404 Not Found".
//
// # Methods
//
// GET and HEAD only. Any other method is answered 405 Method Not Allowed
// with "Allow: GET, HEAD". A HEAD answer carries exactly the header fields
// of the matching GET, Content-Length included, and no body; it does not
// open the file.
//
// # Validators and conditional requests
//
// Files are content-addressed, so the entity tag is strong and derived from
// the content's SHA-256: "<hash>" for the identity bytes, "<hash>-br",
// "<hash>-zstd" or "<hash>-gzip" for a stored compressed variant. A gzip
// answer made per request (below) has the weak W/"<hash>-gzip": its bytes
// differ from the stored gzip's that replace it, but not its meaning, so
// If-None-Match matches across the two, while If-Match and If-Range
// (strong comparison) never match it. The
// Last-Modified of every file of a deploy is the time the deploy last went
// live (Deploy.PublishedAt), or its creation time for a deploy never
// published (a preview). Using the publish time rather than the creation
// time keeps the date moving forward after a rollback to an older deploy,
// so a cache that revalidates with If-Modified-Since alone still sees the
// change.
//
// Conditional header fields are evaluated in the order of RFC 9110 section
// 13.2.2: If-Match (strong comparison) or, without it, If-Unmodified-Since
// can fail the request with 412; If-None-Match (a list, "*", weak
// comparison) or, without it, If-Modified-Since answers 304 Not Modified
// with ETag, Last-Modified, Cache-Control and Vary but no body. A 404 is
// never conditional.
//
// # Ranges
//
// Every 200 carries "Accept-Ranges: bytes". A GET or HEAD with a single
// byte range, "bytes=a-b", "bytes=a-" or "bytes=-n", is answered 206
// Partial Content with Content-Range, cut from the identity bytes: a range
// answer never has a Content-Encoding, and its ETag is the identity one. A
// last position past the end is clamped. A range that starts at or past the
// end, "bytes=-0", or any range of an empty file is answered 416 with
// "Content-Range: bytes */<size>". Several ranges, another unit or a
// malformed value are ignored and the whole file is sent with 200
// (multipart/byteranges is not implemented). If-Range is honoured with the
// identity entity tag (strong comparison) or the exact Last-Modified date;
// when it does not match, the whole file is sent.
//
// # Content types
//
// Content-Type comes from the extension of the file actually served
// (/about served from /about.html is text/html), from a fixed table of web
// types (html, css, js/mjs, json, xml, svg, png, jpg, gif, webp, avif, ico,
// woff/woff2, ttf/otf, txt, wasm, pdf, mp4, webm, mp3, source maps, web
// manifests and more); text types carry "; charset=utf-8". Unknown or
// missing extensions are application/octet-stream. Every answer with a body
// (or that would have one, for HEAD) carries "X-Content-Type-Options:
// nosniff".
//
// # Compression
//
// The blob store keeps br, zstd and gzip variants, made once by its
// background compressor after the upload (only when they are smaller), and
// the edge chooses among them by Accept-Encoding q-values. A coding the header
// does not list, or lists with q=0, is not used; "*" covers unlisted
// codings; "x-gzip" is gzip. The highest q wins, br before zstd before gzip
// on ties. Identity is the fallback, and wins over a coding only when the
// header lists it with a strictly higher q. When nothing listed is
// available the identity bytes are sent (never 406). Whenever a file has at
// least one variant, or is compressed per request, every answer for it
// (200, 206, 304, 416, and the 404 page) carries "Vary: Accept-Encoding",
// so caches keep the representations apart.
//
// Until its variants exist (blobstore.Info.Pending: the compressor has
// queued the blob, having found it compressible), a file up to
// MaxOnTheFlySize (1 MiB) is compressed per request with gzip level 1 for
// a client that accepts gzip (by the same q-value rules), not stored. At
// most half the cores compress at once, each with a reused writer; a
// request that finds them all busy, a file over the bound, or a result not
// smaller than the file gets the identity bytes, never a wait. Range
// requests and the 404 page are always served from stored bytes.
// onthefly.go explains the choice of gzip level 1.
//
// # Caching
//
// 200, 206, 304 and 301 answers carry Config.CacheControl, by default
// "public, max-age=0, must-revalidate": caches may store files but must
// revalidate them, which costs a 304 thanks to the strong ETags, and a
// publish or rollback is visible at once. 404 answers, the custom page
// included, always carry "Cache-Control: no-cache" whatever the
// configuration, so a file added by the next publish is not hidden by a
// cached 404. 5xx answers carry "no-store".
//
// # HTTPS-only sites and HSTS
//
// A site with HTTPSOnly answers plain-HTTP requests with 308 to the same
// URL over HTTPS on Config.HTTPSPort (ACME HTTP-01 challenges excepted;
// without an HTTPS listener the site is served over plain HTTP), and a
// site with HSTS adds "Strict-Transport-Security: max-age=31536000" to
// every answer over TLS, never over plain HTTP. https.go has the rules.
//
// # Errors
//
// When the metadata cannot be read the answer is 500 (503 while the store
// is closing); when a file listed in the deploy cannot be read (missing blob,
// unreachable owners, disk error) the answer is 503, since another try or
// another node may succeed. Bodies are the plain status line text, never
// internal details. Each such failure is logged at error level with
// component=serve and the host, deploy, path, hash and cause; a broken
// /404.html is logged and degrades to the plain 404. A compressed variant
// that disappears between Stat and Open is replaced by the identity bytes.
// The normal serving path does not log.
//
// # Performance
//
// When the Catalog announces its changes (ChangeNotifier, which *raft.Store
// implements), the edge answers from memory what it has read before, and a
// hot request costs no lookup in bbolt, no system call besides the socket's
// and no allocation (BenchmarkEdge shows 0 allocs/op):
//
//   - Host -> deploy, per state of the Catalog: the cache is dropped as a
//     whole when Changed fires (any applied Raft batch), so a publish or a
//     rollback is visible to the next request, as without the cache. A
//     host not cached is resolved in one read of the Catalog when it is a
//     SitePublisher (the site and its published deploy together).
//   - Request path -> file (or redirect, or miss), per deploy id: the
//     manifest of a complete deploy never changes, so these survive state
//     changes for as long as the deploy resolves. A full table admits one
//     new path in 16, so a deploy requested all over does not churn it.
//   - The manifest of a large live deploy (more than IndexMinEntries
//     entries, no site rules), within Config.IndexBytes (the live deploys
//     with the most entries first): every path and content hash in a
//     compact index, built in the background once the deploy is requested
//     and dropped once it is no longer published. A lookup in it takes no
//     lock and allocates nothing; its answers are exactly the Catalog's
//     (index.go).
//   - Blob infos, and the bytes of files (and variants) up to 64 KiB within
//     Config.CacheBytes (default 64 MiB), by content hash. Bytes are checked
//     against the content hash when they are read into memory (a variant is
//     decompressed first), so memory never serves a corrupt copy; a copy that
//     does not check out is not used, and the failure is logged.
//
// Every cache is bounded (131,072 hosts and deploy views per state,
// 65,536 paths per deploy and 524,288 in all, blobs, bytes, indexes) and a
// lookup takes no lock once warm (see readMap): a cached route keeps its
// blob's entry. A route made for the request (a path of an indexed deploy
// outside the index's route cache) finds its blob entry in the shared blob
// map under a read lock. A Catalog without Changed is read on every
// request, and nothing is cached.
//
// On the plain-HTTP listener the node wraps each connection in a Conn
// (conn.go): its reads and writes are raw system calls on the non-blocking
// socket, waiting in Go's poller only on EAGAIN, so a write the kernel
// preempts (on loopback a write runs the client's whole receive path)
// keeps its thread's processor instead of setting off the runtime's
// hand-off of it to another thread; a full write buffer of fasthttp
// is held and sent with the rest of the answer, so a header and a body
// from memory still go out in one writev; and of the three deadlines
// fasthttp sets per request, only one sooner than the deadline armed moves
// the poller's timer (a later one is armed if the sooner one passes), so
// timeouts are exact at a fraction of the cost.
//
// Bigger files are streamed from the blob's file with fasthttp's
// SetBodyStream, never loaded into memory. Over a plain TCP connection,
// whole files go out with sendfile(2); so do ranges: the file is positioned
// at the range start and handed to fasthttp as a fileSection, whose WriteTo
// gives fasthttp's body writer an *io.LimitedReader around the *os.File, the
// shape net.TCPConn turns into sendfile. (Behind in-process TLS the bytes are
// copied through the connection's buffer instead.) fasthttp closes the file
// once the answer is written. A range of a file held in memory is cut from
// the memory copy.
//
// # Security notes
//
//   - A request path is only ever a manifest key; content is opened by its
//     hash. No request byte reaches a file system path, and ".." (plain or
//     percent-encoded) is resolved before the lookup, so a request cannot
//     name anything outside its deploy. Manifests hold no backslashes, NUL
//     or dot segments (atoll.CleanPath), so such requests simply miss.
//   - Preview hosts serve complete deploys to anyone who knows the deploy
//     id. Deploy ids must be unguessable if previews are meant to stay
//     private; uploading and failed deploys are never reachable.
//   - Hosts that are not plain DNS names are not looked up at all.
//   - The edge's own redirects only ever point to a path on the same host
//     (no scheme, no authority; the path is cleaned so it cannot start
//     with "//", and is percent-escaped, backslashes included), so they
//     cannot be turned into open redirects. The 308 of an HTTPS-only site
//     names the scheme and authority, made of the host the request
//     resolved (a site's, as normalized for the lookup) and the edge's own
//     HTTPS port. A _redirects rule may name another host only as its
//     literal, checked http(s) target, with the values a request binds
//     percent-escaped into it: a visitor cannot choose the host. A query
//     string with control bytes or spaces is
//     dropped rather than echoed.
//   - Nothing is ever fetched from another host (no proxying), and site
//     rules cannot set the headers that frame the answer or carry its
//     validators. Basic-Auth answers are private unless _headers says
//     otherwise.
//   - nosniff on every answer with a body, and unknown types as
//     application/octet-stream, keep browsers from executing content as
//     something it was not served as.
//   - One range per request: no multipart answers and no overlapping-range
//     amplification.
//   - Only the deploy's own bytes are ever compressed, never anything from
//     the request, so compression side channels (BREACH) have nothing to
//     reveal. Per-request compression costs at most one MaxOnTheFlySize
//     file of gzip level 1 (about 10 ms of CPU), on at most half the cores,
//     and only while a file's variants are being made: a client cannot
//     make the edge burn more, nor queue behind it.
//
// # Site rules
//
// A deploy whose record names compiled rules (atoll.Deploy.Rules, read
// through RuleSource) is served through them (rules.go, package
// siterules): Basic-Auth first (401 with WWW-Authenticate), then the first
// matching _redirects rule unless a file at the path shadows it (rules
// forced with "!" are not shadowed), then the paths above; the headers of
// _headers go on the answer last. A 3xx rule answers with its Location
// (the request's query string kept unless the target has one); a 200 rule
// serves its target as if it had been requested; a 404 or 410 rule serves
// the target's bytes with that status, unconditionally and without
// validators. /_redirects and /_headers are never served. _headers'
// Cache-Control replaces Config.CacheControl on 2xx and 3xx answers, never
// on a 404's no-cache. The compiled rules are cached by their hash (at
// most maxRuleSets), what they say for a path in that path's cached route,
// and successful Basic-Auth checks per rule set; a deploy without rules
// costs one nil check. docs/RULES.md is the user's manual.
package serve
