package siterules

import (
	"fmt"
	"net/url"
	"path"
	"strings"
)

// pattern is a compiled path pattern: literal segments and ":name"
// placeholders, each matching one whole segment, then an optional splat
// matching the rest.
type pattern struct {
	segs  []string // a segment starting with ':' is a placeholder
	splat bool
	names int // placeholders among segs
}

// normalize cleans a pattern or request path for matching: path.Clean, and
// no trailing slash except for the root.
func normalize(p string) string {
	if p == "/" {
		return p
	}
	if c := path.Clean(p); c != p {
		p = c
	}
	return p
}

// parsePattern compiles a FROM path or a _headers path. It returns the
// pattern's normalized text (the form Rules records) and a message for a
// pattern it does not accept.
func parsePattern(s string) (pattern, string, error) {
	if !strings.HasPrefix(s, "/") {
		if strings.Contains(s, "://") {
			return pattern{}, "", fmt.Errorf("%q: rules for other hosts or protocols are not supported; start the path with /", s)
		}
		return pattern{}, "", fmt.Errorf("%q: a path must start with /", s)
	}
	dec, err := url.PathUnescape(s)
	if err != nil {
		return pattern{}, "", fmt.Errorf("%q: bad percent-encoding", s)
	}
	var p pattern
	if dec == "/*" || strings.HasSuffix(dec, "/*") {
		p.splat = true
		dec = strings.TrimSuffix(dec, "*")
	}
	if strings.ContainsRune(dec, '*') {
		return pattern{}, "", fmt.Errorf("%q: a splat (*) is only allowed as the last segment", s)
	}
	if strings.ContainsAny(dec, "\x00\\") {
		return pattern{}, "", fmt.Errorf("%q: NUL and backslash are not allowed in a path", s)
	}
	dec = normalize(dec)
	for seg := range strings.SplitSeq(strings.TrimPrefix(dec, "/"), "/") {
		if seg == "" {
			continue
		}
		if seg[0] == ':' {
			if !validName(seg[1:]) {
				return pattern{}, "", fmt.Errorf("%q: placeholder %q: use :name with letters, digits and _", s, seg)
			}
			if seg == ":splat" {
				return pattern{}, "", fmt.Errorf("%q: :splat is the name of what * matches; use another name", s)
			}
			p.names++
		}
		p.segs = append(p.segs, seg)
	}
	if p.names > MaxPlaceholders {
		return pattern{}, "", fmt.Errorf("%q: %d placeholders, at most %d", s, p.names, MaxPlaceholders)
	}
	text := dec
	if p.splat {
		text = strings.TrimSuffix(dec, "/") + "/*"
	}
	return p, text, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// captures holds what a match bound: placeholders by name, and the splat.
// It lives on the caller's stack.
type captures struct {
	n     int
	names [MaxPlaceholders * 2]string // placeholders and query captures
	vals  [MaxPlaceholders * 2]string
	splat string
}

func (c *captures) add(name, val string) {
	if c.n < len(c.names) {
		c.names[c.n], c.vals[c.n] = name, val
		c.n++
	}
}

func (c *captures) get(name string) (string, bool) {
	if name == "splat" {
		return c.splat, true
	}
	for i := 0; i < c.n; i++ {
		if c.names[i] == name {
			return c.vals[i], true
		}
	}
	return "", false
}

// match reports whether normalized path p matches, binding into c (which
// may be nil when only the verdict matters).
func (pt *pattern) match(p string, c *captures) bool {
	rest := p[1:]
	for _, s := range pt.segs {
		if rest == "" {
			return false
		}
		seg := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seg, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		if s[0] == ':' {
			if c != nil {
				c.add(s[1:], seg)
			}
		} else if seg != s {
			return false
		}
	}
	if pt.splat {
		if c != nil {
			c.splat = rest
		}
		return true
	}
	return rest == ""
}

// placeholders calls fn with the name of every ":name" in s.
func placeholders(s string, fn func(name string)) {
	for i := 0; i < len(s); i++ {
		if s[i] != ':' {
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] == '_' || 'a' <= s[j] && s[j] <= 'z' || 'A' <= s[j] && s[j] <= 'Z' || j > i+1 && '0' <= s[j] && s[j] <= '9') {
			j++
		}
		if j > i+1 {
			fn(s[i+1 : j])
			i = j - 1
		}
	}
}
