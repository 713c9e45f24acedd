package raft

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecode checks that Decode never panics, and that whatever it accepts
// encodes again to a canonical form that decodes to the same command.
// Seeds: every command type (f.Add) and testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, c := range allCommands {
		b, err := Encode(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte("\x01\x05{\"deploy\":\"d\",\"files\":[{\"path\":\"/a\",\"hash\":\"\"},null]}"))
	f.Add([]byte("\x01\x01{\"created\":\"0000-01-01T00:00:00+01:00\"}"))
	f.Fuzz(func(t *testing.T, in []byte) {
		cmd, err := Decode(in)
		if err != nil {
			if cmd != nil {
				t.Fatalf("Decode returned %#v with error %v", cmd, err)
			}
			return
		}
		b1, err := Encode(cmd)
		if err != nil {
			t.Fatalf("Decode accepted %q as %#v, which does not encode: %v", in, cmd, err)
		}
		again, err := Decode(b1)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(x))) failed: %v\nencoded: %q", err, b1)
		}
		b2, err := Encode(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("encoding not stable:\n%q\n%q", b1, b2)
		}
	})
}

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
