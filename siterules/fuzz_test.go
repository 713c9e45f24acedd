package siterules

import (
	"strings"
	"testing"
)

func FuzzRedirects(f *testing.F) {
	for _, s := range []string{docRedirects, "/a /b\n", "/a/:x/* /b/:x/:splat 200!\n", "/s q=:v /t?x=:v 302\n", "/\t/\r\n", "/%zz /x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		var w warnings
		rules, err := parseRedirects([]byte(src), &w)
		if err != nil {
			return
		}
		m, err := NewMatcher(&Rules{Redirects: rules})
		if err != nil {
			t.Fatalf("parsed rules do not compile: %v", err)
		}
		for _, r := range rules {
			if !strings.HasPrefix(r.From, "/") {
				t.Fatalf("FROM %q", r.From)
			}
			if strings.HasPrefix(r.To, "/") && strings.HasPrefix(r.To, "//") {
				t.Fatalf("target %q leaves the site", r.To)
			}
			if _, to, ok := m.Redirect(strings.TrimSuffix(r.From, "*"), query{}, false); ok && strings.HasPrefix(to, "//") {
				t.Fatalf("target %q leaves the site", to)
			}
		}
	})
}

func FuzzHeaders(f *testing.F) {
	for _, s := range []string{docHeaders, "/a\n  X: y\n  ! Z\n", "  X: y\n", "/a\n  Basic-Auth: u:p\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		var w warnings
		blocks, err := parseHeaders([]byte(src), &w)
		if err != nil {
			return
		}
		m, err := NewMatcher(&Rules{Headers: blocks})
		if err != nil {
			t.Fatalf("parsed blocks do not compile: %v", err)
		}
		for _, b := range blocks {
			for _, h := range b.Set {
				if forbidden[h.Name] || !validToken(h.Name) || !validValue(h.Value) {
					t.Fatalf("header %q: %q accepted", h.Name, h.Value)
				}
			}
			m.Headers(strings.TrimSuffix(b.Path, "*"))
		}
	})
}
