package siterules

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll"
)

func compile(t *testing.T, redirects, headers string) (*Rules, []Warning) {
	t.Helper()
	var src Sources
	if redirects != "" {
		src.Redirects = []byte(redirects)
	}
	if headers != "" {
		src.Headers = []byte(headers)
	}
	r, w, err := Compile(src)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return r, w
}

func matcher(t *testing.T, redirects, headers string) *Matcher {
	t.Helper()
	r, _ := compile(t, redirects, headers)
	enc, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMatcher(dec)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type query map[string]string

func (q query) Get(k string) (string, bool) { v, ok := q[k]; return v, ok }

// The examples of Netlify's and Cloudflare's documentation of _redirects.
const docRedirects = `
# Redirects from what the browser requests to what we serve
/home              /
/blog/my-post.php  /blog/my-post
/news              /blog
/cuties            https://www.petsofnetlify.com
/news/:year/:month/:date/:slug  /blog/:year/:month/:date/:slug
/shop/*  /store/:splat  302
/store id=:id  /blog/:id  301
/articles id=:id tag=:tag /posts/:tag/:id 301
/old-path  /new-path  301!
/gone  /gone.html  410
/app/*  /app/index.html  200
/ecommerce  /store-closed  404
`

func TestRedirectMatch(t *testing.T) {
	m := matcher(t, docRedirects, "")
	tests := []struct {
		name       string
		path       string
		q          query
		forcedOnly bool
		wantLine   int // 0: no match
		wantTo     string
	}{
		{"static", "/home", nil, false, 3, "/"},
		{"trailing slash ignored", "/news/", nil, false, 5, "/blog"},
		{"absolute target", "/cuties", nil, false, 6, "https://www.petsofnetlify.com"},
		{"placeholders", "/news/2024/02/12/my-story", nil, false, 7, "/blog/2024/02/12/my-story"},
		{"placeholders need every segment", "/news/2024/02/12", nil, false, 0, ""},
		{"splat", "/shop/shirts/red", nil, false, 8, "/store/shirts/red"},
		{"splat of nothing", "/shop", nil, false, 8, "/store/"},
		{"query placeholder", "/store", query{"id": "42"}, false, 9, "/blog/42"},
		{"query required", "/store", nil, false, 0, ""},
		{"two query placeholders", "/articles", query{"id": "7", "tag": "go"}, false, 10, "/posts/go/7"},
		{"forced only skips unforced", "/home", nil, true, 0, ""},
		{"forced only keeps forced", "/old-path", nil, true, 11, "/new-path"},
		{"410", "/gone", nil, false, 12, "/gone.html"},
		{"spa", "/app/settings/profile", nil, false, 13, "/app/index.html"},
		{"case-sensitive", "/HOME", nil, false, 0, ""},
		{"no rule", "/about", nil, false, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q Query
			if tt.q != nil {
				q = tt.q
			}
			r, to, ok := m.Redirect(tt.path, q, tt.forcedOnly)
			if tt.wantLine == 0 {
				if ok {
					t.Fatalf("got rule of line %d -> %q, want none", r.Line, to)
				}
				return
			}
			if !ok || r.Line != tt.wantLine || to != tt.wantTo {
				t.Fatalf("got ok=%v line %v to %q, want line %d to %q", ok, r, to, tt.wantLine, tt.wantTo)
			}
		})
	}
}

func TestFirstMatchWins(t *testing.T) {
	m := matcher(t, "/a/* /first 301\n/a/b /second 301\n/c /third 301\n/* /fourth 301\n", "")
	for path, want := range map[string]string{"/a/b": "/first", "/c": "/third", "/x": "/fourth"} {
		if _, to, _ := m.Redirect(path, nil, false); to != want {
			t.Errorf("%s: got %q, want %q", path, to, want)
		}
	}
}

func TestTargetCannotLeaveSite(t *testing.T) {
	m := matcher(t, "/x/* /safe/:splat 301\n/y/:p /:p 200\n", "")
	if _, to, _ := m.Redirect("/x/a/b c", nil, false); to != "/safe/a/b c" {
		t.Errorf("got %q", to)
	}
	if _, to, _ := m.Redirect("/y/%2e%2e", nil, false); to != "/%2e%2e" {
		t.Errorf("got %q", to)
	}
	r, _ := compile(t, "/a //evil.example 301\n/b /../../etc/passwd 200\n", "")
	if len(r.Redirects) != 1 || r.Redirects[0].To != "/etc/passwd" {
		t.Errorf("got %+v, want only /b cleaned to /etc/passwd (a path of the site)", r.Redirects)
	}
}

func TestRedirectWarnings(t *testing.T) {
	src := strings.Join([]string{
		"/ok /fine",             // 1
		"nopath /x",             // 2
		"/a",                    // 3
		"/b /c 299",             // 4
		"/d /e 301 Country=us",  // 5
		"/f https://x.test 200", // 6
		"https://a.test/* /x",   // 7
		"/g /:nope 301",         // 8
		"/h/*/i /x",             // 9
		"/j ftp://x.test 301",   // 10
		"",
	}, "\n")
	r, w := compile(t, src, "")
	if len(r.Redirects) != 1 {
		t.Fatalf("got %d rules, want 1", len(r.Redirects))
	}
	var lines []int
	for _, x := range w {
		lines = append(lines, x.Line)
		if !strings.HasPrefix(x.String(), fmt.Sprintf("_redirects:%d: ", x.Line)) {
			t.Errorf("warning %q does not name the file and line", x)
		}
	}
	if got, want := fmt.Sprint(lines), "[2 3 4 5 6 7 8 9 10]"; got != want {
		t.Errorf("warned lines %s, want %s: %v", got, want, w)
	}
}

func TestLimits(t *testing.T) {
	var b strings.Builder
	for i := range MaxRedirects {
		fmt.Fprintf(&b, "/old/page-%d /new/page-%d 301\n", i, i)
	}
	r, _ := compile(t, b.String(), "")
	if _, err := Encode(r); err != nil {
		t.Fatalf("%d static rules do not encode: %v", MaxRedirects, err)
	}
	b.WriteString("/one/more /x\n")
	_, _, err := Compile(Sources{Redirects: []byte(b.String())})
	var re *Error
	if !errors.As(err, &re) || !errors.Is(err, atoll.ErrInvalid) || re.Line != MaxRedirects+1 {
		t.Fatalf("got %v, want an *Error at line %d", err, MaxRedirects+1)
	}
	_, _, err = Compile(Sources{Headers: []byte(strings.Repeat("x", MaxFileBytes+1))})
	if !errors.Is(err, atoll.ErrInvalid) {
		t.Fatalf("oversized file: got %v", err)
	}
	var h strings.Builder
	for i := range MaxHeaderBlocks + 1 {
		fmt.Fprintf(&h, "/p%d\n  X-A: b\n", i)
	}
	if _, _, err = Compile(Sources{Headers: []byte(h.String())}); !errors.As(err, &re) {
		t.Fatalf("too many blocks: got %v", err)
	}
}

const docHeaders = `
# a comment
/*
  X-Frame-Options: DENY
  X-XSS-Protection: 1; mode=block
/templates/index.html
  X-Frame-Options: SAMEORIGIN
/assets/*
  Cache-Control: public, max-age=31536000, immutable
/assets/private/*
  ! Cache-Control
  Cache-Control: no-store
/*.jpg
  X-Bad: splat not at the end
/secure/*
  Basic-Auth: someuser:somepassword anotheruser:anotherpassword
/multi
  Link: </style.css>; rel=preload
  Link: </main.js>; rel=preload
`

func TestHeaders(t *testing.T) {
	r, w := compile(t, "", docHeaders)
	if len(w) != 1 || w[0].Line != 13 {
		t.Errorf("warnings %v, want one for line 13", w)
	}
	for _, b := range r.Headers {
		for _, c := range b.Auth {
			if c.password != "" || len(c.Hash) != 32 || len(c.Salt) != 16 {
				t.Fatalf("credential %+v kept its password or lacks a hash", c)
			}
		}
	}
	m := matcher(t, "", docHeaders)
	get := func(hs *HeaderSet, name string) string {
		for _, h := range hs.Set {
			if h.Name == name {
				return h.Value
			}
		}
		return ""
	}
	hs := m.Headers("/templates/index.html")
	if got := get(hs, "X-Frame-Options"); got != "DENY, SAMEORIGIN" {
		t.Errorf("merged X-Frame-Options %q", got)
	}
	hs = m.Headers("/assets/private/key")
	if got := get(hs, "Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control after removal %q", got)
	}
	if hs = m.Headers("/assets/app.js"); get(hs, "Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("assets Cache-Control %q", get(hs, "Cache-Control"))
	}
	hs = m.Headers("/multi")
	if got := get(hs, "Link"); got != "</style.css>; rel=preload, </main.js>; rel=preload" {
		t.Errorf("Link %q", got)
	}
	hs = m.Headers("/secure/page")
	if len(hs.Auth) != 2 {
		t.Fatalf("auth users %d, want 2", len(hs.Auth))
	}
	if !hs.Auth[0].Verify("someuser", "somepassword") || hs.Auth[0].Verify("someuser", "wrong") || hs.Auth[0].Verify("anotheruser", "somepassword") {
		t.Error("Verify does not tell right from wrong")
	}
	if len(m.Headers("/open").Auth) != 0 {
		t.Error("an unprotected path asks for auth")
	}
}

func TestForbiddenHeaders(t *testing.T) {
	for _, line := range []string{"Content-Length: 5", "content-encoding: gzip", "! Date", "Transfer-Encoding: chunked", "ETag: x", "Location: /x"} {
		_, _, err := Compile(Sources{Headers: []byte("/*\n  X-Ok: 1\n  " + line + "\n")})
		var re *Error
		if !errors.As(err, &re) || re.Line != 3 || !errors.Is(err, atoll.ErrInvalid) {
			t.Errorf("%q: got %v, want an *Error at line 3", line, err)
		}
	}
}
