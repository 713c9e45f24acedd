package builder

import (
	"archive/tar"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll"
)

func fuzzTar(f *testing.F, entries ...tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		body := "content of " + h.Name
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			f.Fatalf("seed %q: %v", h.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// checkAccepted asserts what every accepted manifest path must satisfy: it
// is already normalized, and nothing in it can climb out of the deploy.
func checkAccepted(t *testing.T, p string) {
	t.Helper()
	if c, err := atoll.CleanPath(p); err != nil || c != p {
		t.Fatalf("accepted path %q is not normalized (CleanPath = %q, %v)", p, c, err)
	}
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || strings.Contains(p, "//") {
		t.Fatalf("accepted path %q", p)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "." || seg == ".." || strings.EqualFold(seg, "%2e%2e") {
			t.Fatalf("accepted escaping path %q", p)
		}
	}
}

// FuzzTarManifest feeds arbitrary bytes to the tar validator: it must never
// panic, must answer every rejection as an API error, and may only accept
// normalized, non-escaping, unique paths.
func FuzzTarManifest(f *testing.F) {
	reg := func(name string) tar.Header { return tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644} }
	f.Add(fuzzTar(f, reg("index.html"), reg("css/site.css")))
	f.Add(fuzzTar(f, tar.Header{Name: "./", Typeflag: tar.TypeDir}, reg("./index.html"), reg("./a/b/c.txt")))
	f.Add(fuzzTar(f, reg("../etc/passwd")))
	f.Add(fuzzTar(f, reg("/etc/passwd")))
	f.Add(fuzzTar(f, reg("a/../../b")))
	f.Add(fuzzTar(f, reg("a"), reg("./a")))
	f.Add(fuzzTar(f, reg(`..\..\x`)))
	f.Add(fuzzTar(f, reg("%2e%2e/x")))
	f.Add(fuzzTar(f, reg("./../x")))
	f.Add(fuzzTar(f, reg("."+strings.Repeat("/x", 600))))
	f.Add(fuzzTar(f, tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}))
	f.Add(fuzzTar(f, reg("a"), tar.Header{Name: "b", Typeflag: tar.TypeLink, Linkname: "a"}))
	f.Add(fuzzTar(f, tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"path": "../x"}}, reg("ok")))
	f.Add(fuzzTar(f, tar.Header{Name: "dev", Typeflag: tar.TypeChar}))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0}, 1024))
	f.Add([]byte("not a tar at all"))

	lim := tarLimits{maxFiles: 1000, maxFileBytes: 1 << 20, maxTotal: 4 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, _, err := scanTar(bytes.NewReader(data), lim)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status/100 != 4 || ae.body.Error == "" {
				t.Fatalf("rejection %v is not a 4xx API error", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, e := range entries {
			checkAccepted(t, e.Path)
			if seen[e.Path] {
				t.Fatalf("accepted duplicate path %q", e.Path)
			}
			seen[e.Path] = true
			if !atoll.ValidHash(e.Hash) {
				t.Fatalf("entry %q has hash %q", e.Path, e.Hash)
			}
		}
	})
}

// FuzzManifestJSON does the same for the JSON manifest parser.
func FuzzManifestJSON(f *testing.F) {
	h := strings.Repeat("ab", 32)
	for _, s := range []string{
		`{"files":{"/index.html":"` + h + `"}}`,
		`{"files":{"a":"` + h + `","/a":"` + h + `"}}`,
		`{"files":{"/../x":"` + h + `"}}`,
		`{"files":{"/%2e%2e/x":"` + h + `"}}`,
		`{"files":{"/a\u0000":"` + h + `"}}`,
		`{"files":{"/a":1}}`,
		`{"files":{"/a":{"b":"c"}}}`,
		`{"files":[],"x":1}`,
		`{"files":{}}`,
		`{"files":null}`,
		`{"files":{"/a":"` + h + `"}}{`,
		`{`,
		``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		files, _, err := parseManifest(strings.NewReader(s), "test", 1000)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status/100 != 4 {
				t.Fatalf("rejection %v is not a 4xx API error", err)
			}
			return
		}
		for i, f := range files {
			checkAccepted(t, f.Path)
			if !atoll.ValidHash(f.Hash) {
				t.Fatalf("accepted hash %q", f.Hash)
			}
			if i > 0 && files[i-1].Path >= f.Path {
				t.Fatalf("paths not sorted and unique: %q then %q", files[i-1].Path, f.Path)
			}
		}
	})
}

// FuzzBearer checks the Authorization header parser: it never panics, and a
// token it accepts is non-empty, trimmed, and the header's own text after a
// case-insensitive "Bearer" scheme.
func FuzzBearer(f *testing.F) {
	for _, s := range []string{
		"Bearer atl_site_0123", "bearer x", "BEARER  x  ", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz",
		"", " ", "Bearer\tx", "Bearer a b", "Token x", "Bearerx y", "\x00Bearer x", "Bearer \xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		token, ok := bearer(h)
		if !ok {
			if token != "" {
				t.Fatalf("bearer(%q) = %q with ok false", h, token)
			}
			return
		}
		if token == "" || token != strings.TrimSpace(token) || !strings.Contains(h, token) {
			t.Fatalf("bearer(%q) = %q", h, token)
		}
		scheme, _, _ := strings.Cut(strings.TrimSpace(h), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			t.Fatalf("bearer(%q) accepted scheme %q", h, scheme)
		}
	})
}
