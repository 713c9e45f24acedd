package siterules

import (
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
)

const redirectsName = "_redirects"

// ParseRedirects parses a _redirects file. Malformed lines are skipped and
// reported in w; past a limit it returns an *Error.
func parseRedirects(src []byte, w *warnings) ([]Redirect, error) {
	if err := checkSize(redirectsName, src); err != nil {
		return nil, err
	}
	var out []Redirect
	dynamic := 0
	var limitErr error
	lines(redirectsName, src, w, func(n int, line string) {
		if limitErr != nil {
			return
		}
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' {
			return
		}
		r, dyn, err := parseRedirect(strings.Fields(t))
		if err != nil {
			w.add(redirectsName, n, "%v: skipped", err)
			return
		}
		r.Line = n
		if len(out) == MaxRedirects {
			limitErr = &Error{File: redirectsName, Line: n, Msg: fmt.Sprintf("more than %d rules", MaxRedirects)}
			return
		}
		if dyn {
			if dynamic++; dynamic > MaxDynamicRedirects {
				limitErr = &Error{File: redirectsName, Line: n,
					Msg: fmt.Sprintf("more than %d rules with placeholders, a splat or query matches", MaxDynamicRedirects)}
				return
			}
		}
		out = append(out, r)
	})
	return out, limitErr
}

// parseRedirect parses the fields of one rule line. dyn reports a rule
// that is not a plain path (placeholders, splat, query matches).
func parseRedirect(f []string) (r Redirect, dyn bool, err error) {
	pat, from, err := parsePattern(f[0])
	if err != nil {
		return r, false, err
	}
	r.From = from
	names := map[string]bool{}
	for _, s := range pat.segs {
		if s[0] == ':' {
			names[s[1:]] = true
		}
	}
	if pat.splat {
		names["splat"] = true
	}
	i := 1
	for ; i < len(f) && isQueryMatch(f[i]); i++ {
		k, v, _ := strings.Cut(f[i], "=")
		k, kerr := url.QueryUnescape(k)
		if kerr != nil || k == "" {
			return r, false, fmt.Errorf("query match %q: want key=value or key=:name", f[i])
		}
		if strings.HasPrefix(v, ":") {
			if !validName(v[1:]) || v == ":splat" {
				return r, false, fmt.Errorf("query match %q: placeholder %q: use :name with letters, digits and _", f[i], v)
			}
			names[v[1:]] = true
		} else if v, err = url.QueryUnescape(v); err != nil {
			return r, false, fmt.Errorf("query match %q: bad percent-encoding", f[i])
		}
		r.Query = append(r.Query, QueryMatch{Key: k, Value: v})
	}
	if pat.names+len(r.Query) > MaxPlaceholders {
		return r, false, fmt.Errorf("%d placeholders and query matches, at most %d", pat.names+len(r.Query), MaxPlaceholders)
	}
	if i == len(f) {
		return r, false, fmt.Errorf("%q has no target", f[0])
	}
	r.Status = 301
	if i+1 < len(f) {
		st := f[i+1]
		r.Force = strings.HasSuffix(st, "!")
		st = strings.TrimSuffix(st, "!")
		switch n, _ := strconv.Atoi(st); n {
		case 200, 301, 302, 303, 307, 308, 404, 410:
			r.Status = n
		default:
			return r, false, fmt.Errorf("status %q: use 200, 301, 302, 303, 307, 308, 404 or 410, optionally followed by !", f[i+1])
		}
	}
	if i+2 < len(f) {
		return r, false, fmt.Errorf("%q: conditions (country, language, role, cookie) are not supported", strings.Join(f[i+2:], " "))
	}
	if r.To, err = parseTarget(f[i], r.Status); err != nil {
		return r, false, err
	}
	var unknown string
	placeholders(r.To, func(name string) {
		if !names[name] && unknown == "" {
			unknown = name
		}
	})
	if unknown != "" {
		return r, false, fmt.Errorf("target %q uses :%s, which %q does not bind", f[i], unknown, f[0])
	}
	return r, pat.splat || pat.names > 0 || len(r.Query) > 0, nil
}

// isQueryMatch tells a KEY=VALUE token from a target.
func isQueryMatch(s string) bool {
	return strings.Contains(s, "=") && !strings.HasPrefix(s, "/") && !strings.Contains(s, "://")
}

// parseTarget checks a rule's target. A path is cleaned (a trailing slash
// kept) so that it cannot leave the site; an absolute URL must be http or
// https, with a host and no user info, and only for redirects.
func parseTarget(to string, status int) (string, error) {
	if strings.HasPrefix(to, "/") && !strings.HasPrefix(to, "//") {
		p, rest := to, ""
		if i := strings.IndexAny(to, "?#"); i >= 0 {
			p, rest = to[:i], to[i:]
		}
		dec, err := url.PathUnescape(p)
		if err != nil || strings.ContainsAny(dec, "\x00\\") {
			return "", fmt.Errorf("target %q: bad path", to)
		}
		if !validValue(rest) || strings.ContainsAny(rest, " \t") {
			return "", fmt.Errorf("target %q: bad query", to)
		}
		return cleanTarget(dec) + rest, nil
	}
	u, err := url.Parse(to)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return "", fmt.Errorf("target %q: want a path starting with / or an http(s):// URL with a host", to)
	}
	if status < 300 || status > 399 {
		return "", fmt.Errorf("target %q: status %d serves a file of this site; only redirects (3xx) may point to another host, and Atoll never proxies", to, status)
	}
	return to, nil
}

// cleanTarget cleans a decoded target path like a request path: no dot
// segments, no repeated slashes, a trailing slash kept.
func cleanTarget(p string) string {
	c := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}
