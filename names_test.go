package atoll

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCleanPath checks that CleanPath never panics and that every path it
// accepts is in the one normal form the FSM stores: a leading "/", no empty,
// "." or ".." segment, no backslash or control byte, valid UTF-8, at most
// MaxPathLen bytes, and a fixed point (cleaning it again changes nothing).
// Seeds: below and testdata/fuzz/FuzzCleanPath.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{
		"/index.html", "index.html", "a/b/c.txt", "/docs/", "/", "", ".", "..",
		"/a/../b", "a/./b", "//a", "/a//b", `\a`, `a\..\b`, "/a\x00b", "/a\x7f",
		"/%2e%2e/x", "/%2E%2e/x", "/%2", "/%", "/\xff", "/é/日本.html", "/a b/c+d",
		"/.well-known/x", "/..a/b..", strings.Repeat("/x", MaxPathLen/2),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := CleanPath(in)
		if err != nil {
			if out != "" {
				t.Fatalf("CleanPath(%q) = %q with error %v", in, out, err)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("CleanPath(%q): %v, want an error wrapping ErrInvalid", in, err)
			}
			return
		}
		again, err := CleanPath(out)
		if err != nil || again != out {
			t.Fatalf("CleanPath(%q) = %q, but CleanPath(%q) = %q, %v", in, out, out, again, err)
		}
		if !strings.HasPrefix(out, "/") || strings.HasSuffix(out, "/") || len(out) > MaxPathLen || !utf8.ValidString(out) {
			t.Fatalf("CleanPath(%q) = %q", in, out)
		}
		if strings.Contains(out, "//") || strings.ContainsAny(out, "\\\x00") {
			t.Fatalf("CleanPath(%q) = %q has an empty segment, a backslash or NUL", in, out)
		}
		for _, seg := range strings.Split(out[1:], "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("CleanPath(%q) = %q has a dot segment", in, out)
			}
		}
		for _, c := range []byte(out) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("CleanPath(%q) = %q has control byte %#x", in, out, c)
			}
		}
		if strings.Contains(strings.ToLower(out), "%2e") {
			t.Fatalf("CleanPath(%q) = %q has a percent-encoded dot", in, out)
		}
		// Only a leading slash may be added; nothing else changes.
		if out != in && out != "/"+in {
			t.Fatalf("CleanPath(%q) = %q rewrites more than the leading slash", in, out)
		}
	})
}

func TestPublished(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/index.html", true},
		{"index.html", true},
		{"/.well-known/security.txt", true},
		{"/a/.well-known/x", true},
		{"/a.b/c..d", true},
		{"/.env", false},
		{".env", false},
		{"/.git/config", false},
		{"/assets/.DS_Store", false},
		{"/a/.hidden/b.html", false},
		{"/.well-known-not/x", false},
		{"/.well-known/.secret", false},
	} {
		if got := Published(tc.path); got != tc.want {
			t.Errorf("Published(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}
