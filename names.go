package atoll

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxPathLen is the longest manifest path accepted, in bytes.
const MaxPathLen = 1024

// CleanPath checks a manifest path and returns its normalized form: a leading
// "/", segments separated by single slashes, no trailing slash. A missing
// leading slash is added (tar members are relative). It rejects, with an
// error wrapping ErrInvalid, anything that could name a file outside the
// deploy or be read two ways: "." or ".." segments, empty segments,
// backslashes, NUL and other control bytes, percent-encoded dots, invalid
// UTF-8, and paths over MaxPathLen bytes.
func CleanPath(p string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: path %q: %s", ErrInvalid, Truncate(p, 80), why)
	}
	if p == "" || p == "/" {
		return bad("empty")
	}
	if len(p) > MaxPathLen {
		return bad(fmt.Sprintf("longer than %d bytes", MaxPathLen))
	}
	if !utf8.ValidString(p) {
		return bad("not valid UTF-8")
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c < 0x20 || c == 0x7f:
			return bad("control character")
		case c == '\\':
			return bad("backslash")
		case c == '%' && i+2 < len(p) && p[i+1] == '2' && (p[i+2] == 'e' || p[i+2] == 'E'):
			return bad("percent-encoded dot")
		}
	}
	if p[0] != '/' {
		p = "/" + p
	}
	if strings.HasSuffix(p, "/") {
		return bad("ends with a slash")
	}
	for _, seg := range strings.Split(p[1:], "/") {
		switch seg {
		case "":
			return bad("empty segment")
		case ".", "..":
			return bad("dot segment")
		}
	}
	return p, nil
}

// Published reports whether a manifest path (CleanPath's form, or a
// relative path with "/" separators) is published: no segment may start
// with a dot, except ".well-known" (RFC 8615). Dot-files and dot-directories
// (.env, .git/config, .DS_Store) are a build's or an editor's, not the
// site's: `atoll deploy` and the tar upload both leave them out and count
// them, and a JSON manifest naming one has it dropped the same way.
func Published(p string) bool {
	for _, seg := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if strings.HasPrefix(seg, ".") && seg != ".well-known" {
			return false
		}
	}
	return true
}

// ValidSiteName reports whether name is a DNS label: 1-63 of [a-z0-9-],
// not starting or ending with '-', and without "--" (reserved for preview
// hosts "<deploy>--<site>").
func ValidSiteName(name string) bool {
	if len(name) < 1 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	if strings.Contains(name, "--") {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ValidDeployID reports whether id is 1-32 of [a-z0-9].
func ValidDeployID(id string) bool {
	if len(id) < 1 || len(id) > 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ValidTokenID reports whether id is a token id: 1-32 of [a-z0-9], the same
// alphabet as deploy ids.
func ValidTokenID(id string) bool { return ValidDeployID(id) }

// ValidHash reports whether h is a SHA-256 in lowercase hex.
func ValidHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidDomain reports whether d is a lowercase host name of DNS labels with
// at least two labels and no port, e.g. "www.example.com".
func ValidDomain(d string) bool {
	if len(d) < 3 || len(d) > 253 {
		return false
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if len(l) < 1 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Truncate shortens s to n bytes and "..." for an error message that
// quotes user input.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
