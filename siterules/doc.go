// Package siterules parses, validates and compiles a deploy's _redirects
// and _headers files (the Netlify and Cloudflare Pages syntax), and matches
// request paths against the compiled rules for the edge. It depends on the
// standard library and the root package only: the builder compiles rules
// once, when a deploy becomes complete; the compiled form (Rules, encoded by
// Encode) travels with the deploy through Raft; the edge decodes it once per
// deploy (Decode, then NewMatcher) and matches every request against it.
// It never reads files, never fetches anything and never sees a password in
// clear after Compile.
//
// # _redirects
//
// One rule per line, "FROM [KEY=VALUE...] TO [STATUS][!]"; "#" starts a
// comment, blank lines are skipped.
//
//   - FROM is a path: literal segments, ":name" placeholders each matching
//     one whole segment, and an optional trailing "*" splat that matches
//     the rest of the path ("/news/*" matches /news, /news/ and everything
//     under it).
//   - KEY=VALUE tokens match query parameters: "id=:id" requires the
//     parameter and captures it as :id, "lang=en" requires that value.
//   - TO is a path on the site or, for 301, 302, 303, 307 and 308 only, an
//     absolute http:// or https:// URL. :splat and the placeholders of
//     FROM are substituted. A relative TO is cleaned like any request path,
//     so it cannot leave the site.
//   - STATUS is 301 (the default), 302, 303, 307 or 308 (a redirect with a
//     Location), 200 (a rewrite: the target's bytes, with its content type,
//     conditional requests and compression, as if it had been requested),
//     404 or 410 (the target's bytes with that status).
//   - The first matching rule wins. A rule is shadowed where a file exists
//     at the request path (including its index.html and .html forms) unless
//     its status ends in "!": "/* /index.html 200" makes a single-page app
//     work without hiding its assets.
//   - A redirect's Location keeps the request's query string unless TO has
//     one.
//
// # _headers
//
// Blocks of a path pattern (same syntax as FROM) on an unindented line,
// followed by indented "Name: value" lines. Every block whose pattern
// matches the request path applies, in file order: values of a name set by
// several lines or blocks are joined with ", ", and "! Name" (Cloudflare
// syntax) removes a header set by an earlier block or by Atoll.
// Cache-Control from _headers replaces Atoll's default on 200, 206, 304 and
// redirect answers; a 404 keeps "no-cache" so that a missing file does not
// stay cached once a publish adds it. Headers that would break the edge's
// framing, validators or guarantees (Content-Length, Transfer-Encoding,
// Content-Encoding, Content-Range, Date, Connection, ETag, Last-Modified,
// Location, ...) are refused: the deploy fails with the line.
//
// "Basic-Auth: user:password [user2:password2 ...]" protects the paths of
// its block with HTTP Basic authentication. Compile replaces each password
// by a salted PBKDF2-SHA256 hash (PBKDF2Iterations); the edge compares
// user names and hashes in constant time. A verification costs one slow
// hash, so the edge keeps a bounded cache of successful ones (keyed by a
// SHA-256 of the deploy's rules and the credentials) and bounds how many
// slow hashes run at once.
//
// # Malformed lines and limits
//
// A malformed line is skipped and reported as a Warning ("_redirects:3:
// ..."); the deploy goes on. The limits (MaxFileBytes, MaxLineBytes,
// MaxRedirects, MaxDynamicRedirects, MaxHeaderBlocks, MaxHeaderLines,
// MaxHeaderValue, MaxPlaceholders, MaxUsers, MaxEncodedBytes) bound the
// work of the deploy step and of every request; past one, Compile fails
// with an *Error that wraps atoll.ErrInvalid (400).
//
// # Matching cost
//
// No regular expression is built from user input. Static FROM patterns
// (no placeholder, splat or query match) are one map lookup; the dynamic
// ones (at most MaxDynamicRedirects) are compared segment by segment in
// order, so a request costs at most one pass over the rules and the path.
//
// # Where Atoll differs from Netlify and Cloudflare Pages
//
//   - Paths match case-sensitively, as files are looked up; a trailing
//     slash is ignored when matching ("/about" and "/about/" are the same).
//   - No proxying: a 200 rule with an absolute URL is skipped with a
//     warning, since the edge never fetches from other hosts.
//   - Conditions (Country=, Language=, Role=, Cookie=) and domain-level
//     rules (FROM as a full URL) are not supported: the line is skipped
//     with a warning.
//   - A splat is only allowed at the end of a pattern.
//   - Placeholders are not substituted in _headers values.
//   - Headers match the request path, also when a rewrite serves another
//     file.
package siterules
