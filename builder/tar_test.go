package builder

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll/atolltest"
)

// TestScanTarLimits: dot-files are left out and counted, and the site's
// limits (files, bytes of published files) refuse an archive with a 413
// naming them; the archive's own bound counts every member.
func TestScanTarLimits(t *testing.T) {
	files := map[string]string{
		"index.html":       "home",
		".env":             "SECRET=1",
		".git/config":      "[core]",
		".well-known/x":    "ok",
		"a/.DS_Store":      strings.Repeat("d", 100),
		"assets/style.css": "body{}",
	}
	base := tarLimits{site: "blog", maxFiles: 10, maxFileBytes: 1 << 20, maxTotal: 1 << 20, siteBytes: 1 << 20}
	for _, tc := range []struct {
		name    string
		lim     func(l *tarLimits)
		files   int
		skipped int
		err     string // in the 413's message; "" for success
	}{
		{name: "dot-files skipped", lim: func(*tarLimits) {}, files: 3, skipped: 3},
		{name: "site files", lim: func(l *tarLimits) { l.maxFiles = 2 }, err: "--max-files"},
		{name: "dot-files do not count as files", lim: func(l *tarLimits) { l.maxFiles = 3 }, files: 3, skipped: 3},
		{name: "site bytes", lim: func(l *tarLimits) { l.siteBytes = 10 }, err: "--site-max-bytes"},
		{name: "dot-files do not count as site bytes", lim: func(l *tarLimits) { l.siteBytes = 12 }, files: 3, skipped: 3},
		{name: "archive total counts dot-files", lim: func(l *tarLimits) { l.maxTotal = 100 }, err: "more than 100 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := base
			tc.lim(&lim)
			entries, skipped, err := scanTar(bytes.NewReader(atolltest.Tar(files)), lim)
			if tc.err != "" {
				var ae *apiError
				if !errors.As(err, &ae) || ae.status != http.StatusRequestEntityTooLarge || !strings.Contains(ae.body.Error, tc.err) {
					t.Fatalf("err = %v, want a 413 naming %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != tc.files || skipped != tc.skipped {
				t.Errorf("got %d files, %d skipped; want %d, %d", len(entries), skipped, tc.files, tc.skipped)
			}
		})
	}
}

// TestInFlight: a site's creates in progress on this node are admitted up
// to the room left, and released.
func TestInFlight(t *testing.T) {
	f := newInFlight()
	if !f.add("blog", 2) || !f.add("blog", 2) {
		t.Fatal("the first two creates were refused with room for 2")
	}
	if f.add("blog", 2) {
		t.Fatal("a third create was admitted with room for 2")
	}
	if !f.add("shop", 1) {
		t.Fatal("another site's create was refused")
	}
	f.done("blog")
	if !f.add("blog", 2) {
		t.Fatal("a create was refused after one finished")
	}
	if f.add("docs", 0) {
		t.Fatal("a create was admitted with no room")
	}
}
