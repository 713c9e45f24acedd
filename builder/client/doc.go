// Package client is the Go client of Atoll's admin API, used by the atoll
// CLI and by anything that deploys sites programmatically. It imports only
// the standard library and the vocabulary package atoll, never the server.
//
//	c := client.New("http://10.0.0.1:9090,http://10.0.0.2:9090", token)
//	if _, err := c.CreateSite(ctx, "blog", []string{"blog.example.com"}, 0); err != nil {
//		return err
//	}
//	d, err := c.DeployDir(ctx, "./public", "blog", client.DeployOptions{
//		Publish:      true,                         // false: only finalize (preview URL)
//		Concurrency:  8,                            // files hashed or uploaded at once
//		HashCacheDir: client.DefaultHashCacheDir(), // a redeploy re-reads only changed files
//		Progress: func(p client.Progress) {         // PhaseHash, then PhaseUpload
//			fmt.Printf("\r%s %d/%d files", p.Phase, p.Files, p.FilesTotal)
//		},
//	})
//	var ae *client.Error
//	switch {
//	case errors.As(err, &ae) && ae.Status == http.StatusConflict:
//		return fmt.Errorf("%s; blobs missing: %v", ae.Message, ae.Missing)
//	case errors.As(err, &ae):
//		return fmt.Errorf("HTTP %d: %s", ae.Status, ae.Message)
//	case err != nil:
//		return err // no node reachable, or a local file could not be read
//	}
//	fmt.Println(d.ID, d.State, d.URL, len(d.Required), "blobs uploaded")
//
// Every method takes a context first and maps one API route; see package
// builder for the routes and their JSON. A non-2xx answer comes back as an
// *Error carrying the status, the server's one-line message and, for a
// refused finalize or publish, the missing blob hashes. The package's
// Example runs the same calls against a real API.
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
//   - Uploads stream from disk and are retried once after a network error,
//     5xx, 408 or 429 (storing a blob is idempotent); a 4xx such as a hash
//     mismatch is not retried. A file of its own goes with an exact
//     Content-Length; a batch of small files (UploadBatch) goes
//     chunked, 512 KiB per chunk and of memory per batch in flight, its
//     files opened anew for a resend.
//   - Request bodies given by the caller are never closed by the client.
package client
