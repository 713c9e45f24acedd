package serve

import (
	"bytes"
	"strings"

	"github.com/atoll-hosting/atoll"
)

// maxHostLen is the longest DNS name (RFC 1035), without a trailing dot.
const maxHostLen = 253

// hostName turns a request's host (a Host header or the authority of an
// absolute request target) into a lookup key: lowercase, without a port and
// without the trailing dot of a fully qualified name. It reports false for
// anything that is not a DNS name made of letters, digits, '-', '_' and '.',
// such as IP literals in brackets, empty hosts or labels, or stray bytes:
// those never name a site, so they are not looked up.
func hostName(b []byte) (string, bool) {
	if len(b) == 0 || b[0] == '[' {
		return "", false
	}
	if i := bytes.LastIndexByte(b, ':'); i >= 0 {
		for _, c := range b[i+1:] {
			if c < '0' || c > '9' {
				return "", false
			}
		}
		b = b[:i]
	}
	if len(b) > 0 && b[len(b)-1] == '.' {
		b = b[:len(b)-1]
	}
	if len(b) == 0 || len(b) > maxHostLen || b[0] == '.' || b[len(b)-1] == '.' || bytes.Contains(b, []byte("..")) {
		return "", false // empty labels
	}
	lower := true
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		case c >= 'A' && c <= 'Z':
			lower = false
		default:
			return "", false
		}
	}
	if lower {
		return string(b), true
	}
	return strings.ToLower(string(b)), true
}

// hostKind says how a host name selects a deploy.
type hostKind int

const (
	hostInvalid hostKind = iota // under Domain but not a valid site or preview label
	hostSite                    // <site>.<Domain>: the site's published deploy
	hostPreview                 // <deploy>--<site>.<Domain>: that deploy
	hostCustom                  // anything else: a custom domain
)

// route classifies host (as returned by hostName) against the platform
// domain. Only a single label directly under the domain is a site or
// preview label; the domain itself and deeper names are custom domains.
func route(host, domain string) (kind hostKind, site, deploy string) {
	label, ok := strings.CutSuffix(host, "."+domain)
	if !ok || label == "" || strings.Contains(label, ".") {
		return hostCustom, "", ""
	}
	if id, name, ok := strings.Cut(label, "--"); ok {
		if !atoll.ValidDeployID(id) || !atoll.ValidSiteName(name) {
			return hostInvalid, "", ""
		}
		return hostPreview, name, id
	}
	if !atoll.ValidSiteName(label) {
		return hostInvalid, "", ""
	}
	return hostSite, label, ""
}
