// Package ui is the operator's status page that every node's API serves at
// /ui/: plain HTML, CSS and JavaScript embedded in the binary, no build
// step. The page holds no data of its own: it asks for the admin token,
// keeps it in the tab's sessionStorage (never in a URL or a cookie), and
// reads the admin API with it (GET /v1/status, /v1/sites, a site's
// deploys, stats and certificates) every 2 seconds. It must never embed
// anything secret and never call an endpoint that changes state.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the page's files under prefix (e.g. "/ui/"): index.html
// at the prefix itself. The files are public; the data is not.
func Handler(prefix string) http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
