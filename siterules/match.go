package siterules

import (
	"net/url"
	"strings"
)

// Matcher answers, for a request path, which redirect rule applies and
// which headers. It is built once per deploy (NewMatcher) and is safe for
// concurrent use; it never changes after that.
type Matcher struct {
	rules        *Rules
	static       map[string]int // normalized FROM -> index of its first rule
	staticForced map[string]int // the same, among forced rules
	dyn          []dynRule      // rules with placeholders, splat or query matches, in order
	blocks       []pattern      // one per Rules.Headers
	auth         bool           // some block has Basic-Auth
}

type dynRule struct {
	idx int
	pat pattern
}

// NewMatcher compiles rules for matching. It fails on rules that did not
// come from Compile (a pattern it does not accept).
func NewMatcher(r *Rules) (*Matcher, error) {
	m := &Matcher{rules: r, static: map[string]int{}, staticForced: map[string]int{}}
	for i := range r.Redirects {
		rd := &r.Redirects[i]
		pat, _, err := parsePattern(rd.From)
		if err != nil {
			return nil, err
		}
		if pat.names == 0 && !pat.splat && len(rd.Query) == 0 {
			if _, ok := m.static[rd.From]; !ok {
				m.static[rd.From] = i
			}
			if _, ok := m.staticForced[rd.From]; !ok && rd.Force {
				m.staticForced[rd.From] = i
			}
			continue
		}
		m.dyn = append(m.dyn, dynRule{idx: i, pat: pat})
	}
	for _, b := range r.Headers {
		pat, _, err := parsePattern(b.Path)
		if err != nil {
			return nil, err
		}
		m.blocks = append(m.blocks, pat)
		m.auth = m.auth || len(b.Auth) > 0
	}
	return m, nil
}

// Rules returns the rules the Matcher was built from.
func (m *Matcher) Rules() *Rules { return m.rules }

// Query gives the matcher a request's query parameters.
type Query interface {
	Get(key string) (string, bool)
}

// Redirect returns the first rule matching request path p (decoded,
// starting with "/") and query q, and its target with the bound values
// substituted: a path (decoded; cleaned, so it stays on the site) and
// query, or an absolute URL. With forcedOnly, only rules ending in "!"
// count: a file exists at p and shadows the others.
func (m *Matcher) Redirect(p string, q Query, forcedOnly bool) (*Redirect, string, bool) {
	if len(m.rules.Redirects) == 0 {
		return nil, "", false
	}
	p = normalize(p)
	static := m.static
	if forcedOnly {
		static = m.staticForced
	}
	first, ok := static[p]
	if !ok {
		first = len(m.rules.Redirects)
	}
	for i := range m.dyn {
		d := &m.dyn[i]
		if d.idx > first {
			break
		}
		r := &m.rules.Redirects[d.idx]
		if forcedOnly && !r.Force {
			continue
		}
		var c captures
		if d.pat.match(p, &c) && matchQuery(r.Query, q, &c) {
			return r, expand(r.To, &c), true
		}
	}
	if !ok {
		return nil, "", false
	}
	r := &m.rules.Redirects[first]
	return r, r.To, true // a static rule's target binds nothing
}

func matchQuery(want []QueryMatch, q Query, c *captures) bool {
	for _, qm := range want {
		if q == nil {
			return false
		}
		v, ok := q.Get(qm.Key)
		if !ok {
			return false
		}
		if strings.HasPrefix(qm.Value, ":") {
			c.add(qm.Value[1:], v)
		} else if v != qm.Value {
			return false
		}
	}
	return true
}

// expand substitutes bound values into a target. In a path, values go in
// decoded and the result is cleaned again; in a query string or an
// absolute URL, they are escaped.
func expand(to string, c *captures) string {
	if !strings.Contains(to, ":") {
		return to
	}
	abs := !strings.HasPrefix(to, "/")
	var b strings.Builder
	inQuery, qpos := false, -1
	for i := 0; i < len(to); i++ {
		ch := to[i]
		if (ch == '?' || ch == '#') && !inQuery {
			inQuery, qpos = true, b.Len()
		}
		if ch != ':' {
			b.WriteByte(ch)
			continue
		}
		var name string
		placeholders(to[i:], func(n string) {
			if name == "" {
				name = n
			}
		})
		v, ok := c.get(name)
		if name == "" || !strings.HasPrefix(to[i+1:], name) || !ok {
			b.WriteByte(ch)
			continue
		}
		switch {
		case inQuery:
			v = url.QueryEscape(v)
		case abs:
			v = escapeSegments(v)
		}
		b.WriteString(v)
		i += len(name)
	}
	out := b.String()
	if abs {
		return out
	}
	pathPart, rest := out, ""
	if qpos >= 0 {
		pathPart, rest = out[:qpos], out[qpos:]
	}
	return cleanTarget(pathPart) + rest
}

// escapeSegments percent-escapes each segment of a path, keeping slashes.
func escapeSegments(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// HeaderSet is what _headers says for one path: headers to set (values of
// one name joined with ", ", in file order), headers to remove, and the
// Basic-Auth users allowed (none: no authentication).
type HeaderSet struct {
	Set    []Header
	Remove []string
	Auth   []*Credential
}

// Empty reports a set that changes nothing.
func (s *HeaderSet) Empty() bool { return len(s.Set) == 0 && len(s.Remove) == 0 && len(s.Auth) == 0 }

// Headers merges every block matching request path p (decoded, starting
// with "/"), in file order. A block's "! Name" lines remove what earlier
// blocks set (and the edge's own header), then its own lines are set. The
// result is new on every call.
func (m *Matcher) Headers(p string) *HeaderSet {
	hs := &HeaderSet{}
	if len(m.blocks) == 0 {
		return hs
	}
	p = normalize(p)
	for i := range m.blocks {
		if !m.blocks[i].match(p, nil) {
			continue
		}
		b := &m.rules.Headers[i]
		for _, name := range b.Remove { // what earlier blocks (or the edge) set
			hs.remove(name)
		}
		for _, h := range b.Set {
			hs.set(h)
		}
		for j := range b.Auth {
			hs.Auth = append(hs.Auth, &b.Auth[j])
		}
	}
	return hs
}

func (s *HeaderSet) set(h Header) {
	for i := range s.Remove {
		if s.Remove[i] == h.Name { // set again after a removal: the new value stands
			s.Remove = append(s.Remove[:i], s.Remove[i+1:]...)
			break
		}
	}
	for i := range s.Set {
		if s.Set[i].Name == h.Name {
			s.Set[i].Value += ", " + h.Value
			return
		}
	}
	s.Set = append(s.Set, h)
}

func (s *HeaderSet) remove(name string) {
	for i := range s.Set {
		if s.Set[i].Name == name {
			s.Set = append(s.Set[:i], s.Set[i+1:]...)
			break
		}
	}
	for _, r := range s.Remove {
		if r == name {
			return
		}
	}
	s.Remove = append(s.Remove, name)
}

// HasAuth reports whether some block asks for Basic-Auth.
func (m *Matcher) HasAuth() bool { return m.auth }
