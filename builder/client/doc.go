// Package client is the Go client of Atoll's admin API, used by the atoll
// CLI and by anything that deploys sites programmatically.
//
//	c := client.New("http://127.0.0.1:9090", token)
//	d, err := c.DeployDir(ctx, "./public", "blog", client.DeployOptions{Publish: true})
//
// Every method takes a context first and maps one API route; see package
// builder for the routes and their JSON. A non-2xx answer comes back as an
// *Error carrying the status, the server's one-line message and, for a
// refused finalize or publish, the missing blob hashes:
//
//	var ae *client.Error
//	if errors.As(err, &ae) && ae.Status == http.StatusConflict { ... ae.Missing ... }
//
// DeployDir is the digest-based deploy the CLI's "atoll deploy DIR" runs:
// hash every file locally, send the manifest, upload only the blobs the
// cluster lacks (a redeploy with one changed file uploads one blob), then
// publish or finalize. Its doc comment spells out which files it takes
// (dot-files skipped except .well-known; symlinked directories not followed;
// symlinked files followed only inside the directory).
//
// Choices:
//   - New's http.Client has no overall timeout: a large upload can take
//     minutes. Dial, TLS handshake and response headers have timeouts, so a
//     dead or stuck node fails fast; bound whole calls with ctx.
//   - Uploads stream from disk with an exact Content-Length and are retried
//     once after a network error, 5xx, 408 or 429 (PUT of a blob is
//     idempotent); a 4xx such as a hash mismatch is not retried.
//   - Request bodies given by the caller are never closed by the client.
package client
