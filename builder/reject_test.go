package builder_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/builder/buildertest"
)

// TestRejectsBadInput sends every kind of bad request and checks the status,
// that a JSON error explains it, and that nothing was applied or stored.
func TestRejectsBadInput(t *testing.T) {
	h := sha("hello")
	tarOK := func(gz bool, ms ...member) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return makeTar(t, gz, ms...) }
	}
	tarPath := "/v1/sites/demo/deploys"
	badGzipCRC := func(t *testing.T) []byte {
		b := makeTar(t, true, member{name: "index.html", body: "hi"})
		b[len(b)-8] ^= 0xff // the CRC-32 in the gzip trailer
		return b
	}
	truncated := func(t *testing.T) []byte {
		b := makeTar(t, false, member{name: "index.html", body: strings.Repeat("x", 2000)})
		return b[:1000]
	}
	gzipGarbage := func(t *testing.T) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(bytes.Repeat([]byte("not a tar archive "), 100))
		zw.Close()
		return buf.Bytes()
	}
	many := map[string]string{"/a": h, "/b": h, "/c": h, "/d": h}

	tests := []struct {
		name        string
		cfg         builder.Config
		req         request
		body        func(t *testing.T) []byte // overrides req.body
		status      int
		errContains string
		fsmDecides  bool // commands may reach the log (the FSM is the judge), but state must not change
	}{
		// Auth.
		{name: "missing token", req: request{method: "GET", path: "/v1/sites", token: "-"}, status: 401, errContains: "missing token"},
		{name: "wrong token", req: request{method: "GET", path: "/v1/sites", token: "nope"}, status: 401, errContains: "invalid token"},
		{name: "wrong token on upload", req: request{method: "PUT", path: "/v1/blobs/" + h, token: "nope", body: []byte("hello")}, status: 401},

		// Sites.
		{name: "site name uppercase", req: request{method: "POST", path: "/v1/sites", body: []byte(`{"name":"Demo"}`)}, status: 400, errContains: "DNS label"},
		{name: "site name with double hyphen", req: request{method: "POST", path: "/v1/sites", body: []byte(`{"name":"a--b"}`)}, status: 400, errContains: "DNS label"},
		{name: "site name too long", req: request{method: "POST", path: "/v1/sites", body: []byte(`{"name":"` + strings.Repeat("a", 64) + `"}`)}, status: 400},
		{name: "site name empty", req: request{method: "POST", path: "/v1/sites", body: []byte(`{"name":""}`)}, status: 400},
		{name: "site exists", req: request{method: "POST", path: "/v1/sites", body: []byte(`{"name":"demo"}`)}, status: 409, errContains: "already exists", fsmDecides: true},
		{name: "domain taken", req: request{method: "POST", path: "/v1/sites", body: []byte(`{"name":"other","domains":["www.example.com"]}`)}, status: 409, errContains: "www.example.com", fsmDecides: true},
		{name: "domain taken on patch", req: request{method: "PATCH", path: "/v1/sites/second", body: []byte(`{"domains":["www.example.com"]}`)}, status: 409, fsmDecides: true},
		{name: "domain invalid", req: request{method: "POST", path: "/v1/sites", body: []byte(`{"name":"other","domains":["http://x.com/"]}`)}, status: 400, errContains: "invalid domain"},
		{name: "domain with port", req: request{method: "POST", path: "/v1/sites", body: []byte(`{"name":"other","domains":["x.com:8080"]}`)}, status: 400},
		{name: "domain under cluster domain", req: request{method: "POST", path: "/v1/sites", body: []byte(`{"name":"other","domains":["demo.localhost"]}`)}, status: 400, errContains: "cluster domain"},
		{name: "negative retain", req: request{method: "POST", path: "/v1/sites", body: []byte(`{"name":"other","retain":-1}`)}, status: 400, errContains: "retain"},
		{name: "zero retain on patch", req: request{method: "PATCH", path: "/v1/sites/demo", body: []byte(`{"retain":0}`)}, status: 400, errContains: "retain"},
		{name: "site unknown field", req: request{method: "POST", path: "/v1/sites", body: []byte(`{"name":"other","colour":"red"}`)}, status: 400, errContains: "colour"},
		{name: "site malformed JSON", req: request{method: "POST", path: "/v1/sites", body: []byte(`{"name":`)}, status: 400, errContains: "malformed"},
		{name: "site wrong type", req: request{method: "POST", path: "/v1/sites", body: []byte(`{"name":7}`)}, status: 400, errContains: "name"},
		{name: "site empty body", req: request{method: "POST", path: "/v1/sites", body: []byte{}}, status: 400, errContains: "empty"},
		{name: "site trailing data", req: request{method: "POST", path: "/v1/sites", body: []byte(`{"name":"other"} {}`)}, status: 400},
		{name: "get unknown site", req: request{method: "GET", path: "/v1/sites/nosuch"}, status: 404, errContains: "nosuch"},
		{name: "patch unknown site", req: request{method: "PATCH", path: "/v1/sites/nosuch", body: []byte(`{"retain":3}`)}, status: 404},
		{name: "delete unknown site", req: request{method: "DELETE", path: "/v1/sites/nosuch"}, status: 404},
		{name: "patch unknown field", req: request{method: "PATCH", path: "/v1/sites/demo", body: []byte(`{"name":"x"}`)}, status: 400},
		{name: "list deploys of unknown site", req: request{method: "GET", path: "/v1/sites/nosuch/deploys"}, status: 404},

		// Digest deploys.
		{name: "manifest dot-dot", req: request{method: "POST", path: tarPath, body: manifest(map[string]string{"/a/../b": h})}, status: 400, errContains: "dot segment"},
		{name: "manifest escaping relative", req: request{method: "POST", path: tarPath, body: manifest(map[string]string{"../etc/passwd": h})}, status: 400},
		{name: "manifest absolute escape", req: request{method: "POST", path: tarPath, body: manifest(map[string]string{"/../etc/passwd": h})}, status: 400},
		{name: "manifest backslash", req: request{method: "POST", path: tarPath, body: manifest(map[string]string{`/a\b`: h})}, status: 400, errContains: "backslash"},
		{name: "manifest NUL", req: request{method: "POST", path: tarPath, body: manifest(map[string]string{"/a\x00b": h})}, status: 400},
		{name: "manifest percent-encoded dots", req: request{method: "POST", path: tarPath, body: manifest(map[string]string{"/%2e%2e/secret": h})}, status: 400, errContains: "percent"},
		{name: "manifest path too long", req: request{method: "POST", path: tarPath, body: manifest(map[string]string{"/" + strings.Repeat("a", 1024): h})}, status: 400, errContains: "longer"},
		{name: "manifest trailing slash", req: request{method: "POST", path: tarPath, body: manifest(map[string]string{"/dir/": h})}, status: 400},
		{name: "manifest duplicate after normalization", req: request{method: "POST", path: tarPath, body: manifest(map[string]string{"/a": h, "a": h})}, status: 400, errContains: "duplicate"},
		{name: "manifest duplicate JSON key", req: request{method: "POST", path: tarPath, body: []byte(`{"files":{"/a":"` + h + `","/a":"` + h + `"}}`)}, status: 400, errContains: "duplicate"},
		{name: "manifest uppercase hash", req: request{method: "POST", path: tarPath, body: manifest(map[string]string{"/a": strings.ToUpper(h)})}, status: 400, errContains: "SHA-256"},
		{name: "manifest short hash", req: request{method: "POST", path: tarPath, body: manifest(map[string]string{"/a": "abc"})}, status: 400},
		{name: "manifest hash not a string", req: request{method: "POST", path: tarPath, body: []byte(`{"files":{"/a":1}}`)}, status: 400},
		{name: "manifest unknown site", req: request{method: "POST", path: "/v1/sites/nosuch/deploys", body: manifest(map[string]string{"/a": h})}, status: 404, errContains: "nosuch"},
		{name: "manifest too many files", cfg: builder.Config{MaxFiles: 3}, req: request{method: "POST", path: tarPath, body: manifest(many)}, status: 413, errContains: "too many files"},
		{name: "manifest malformed JSON", req: request{method: "POST", path: tarPath, body: []byte(`{"files":{"/a":`)}, status: 400, errContains: "malformed"},
		{name: "manifest unknown field", req: request{method: "POST", path: tarPath, body: []byte(`{"files":{},"publish":true}`)}, status: 400, errContains: "unknown field"},
		{name: "manifest files twice", req: request{method: "POST", path: tarPath, body: []byte(`{"files":{"/a":"` + h + `"},"files":{}}`)}, status: 400},
		{name: "manifest not an object", req: request{method: "POST", path: tarPath, body: []byte(`["/a"]`)}, status: 400},
		{name: "manifest trailing data", req: request{method: "POST", path: tarPath, body: []byte(`{"files":{"/a":"` + h + `"}}x`)}, status: 400},
		{name: "manifest empty", req: request{method: "POST", path: tarPath, body: []byte(`{"files":{}}`)}, status: 400, errContains: "at least one file"},
		{name: "manifest over MaxJSONBytes", cfg: builder.Config{MaxJSONBytes: 64}, req: request{method: "POST", path: tarPath, body: manifest(many)}, status: 413},
		{name: "manifest over MaxJSONBytes, chunked", cfg: builder.Config{MaxJSONBytes: 64}, req: request{method: "POST", path: tarPath, body: manifest(many), chunked: true}, status: 413},
		{name: "site body over MaxJSONBytes, chunked", cfg: builder.Config{MaxJSONBytes: 16}, req: request{method: "POST", path: "/v1/sites", body: []byte(`{"name":"other","domains":["a.example.com"]}`), chunked: true}, status: 413},
		{name: "manifest with publish=true", req: request{method: "POST", path: tarPath + "?publish=true", body: manifest(map[string]string{"/a": h})}, status: 400, errContains: "publish"},
		{name: "unsupported content type", req: request{method: "POST", path: tarPath, contentType: "text/plain", body: []byte("hi")}, status: 415, errContains: "application/x-tar"},

		// Tar uploads.
		{name: "tar symlink", req: request{method: "POST", path: tarPath, contentType: "application/x-tar"}, body: tarOK(false, member{name: "index.html", body: "hi"}, member{name: "passwd", typ: tar.TypeSymlink, linkname: "/etc/passwd"}), status: 400, errContains: `"passwd": is a symbolic link`},
		{name: "tar hardlink", req: request{method: "POST", path: tarPath, contentType: "application/x-tar"}, body: tarOK(false, member{name: "index.html", body: "hi"}, member{name: "copy.html", typ: tar.TypeLink, linkname: "index.html"}), status: 400, errContains: "hard link"},
		{name: "tar char device", req: request{method: "POST", path: tarPath, contentType: "application/x-tar"}, body: tarOK(false, member{name: "null", typ: tar.TypeChar}), status: 400, errContains: "device"},
		{name: "tar block device", req: request{method: "POST", path: tarPath, contentType: "application/x-tar"}, body: tarOK(false, member{name: "sda", typ: tar.TypeBlock}), status: 400, errContains: "device"},
		{name: "tar fifo", req: request{method: "POST", path: tarPath, contentType: "application/x-tar"}, body: tarOK(false, member{name: "pipe", typ: tar.TypeFifo}), status: 400, errContains: "FIFO"},
		{name: "tar dot-dot", req: request{method: "POST", path: tarPath, contentType: "application/x-tar"}, body: tarOK(false, member{name: "../escape.html", body: "x"}), status: 400, errContains: "../escape.html"},
		{name: "tar nested dot-dot", req: request{method: "POST", path: tarPath, contentType: "application/x-tar"}, body: tarOK(false, member{name: "a/../../b", body: "x"}), status: 400},
		{name: "tar dot-dot directory", req: request{method: "POST", path: tarPath, contentType: "application/x-tar"}, body: tarOK(false, member{name: "../up/", typ: tar.TypeDir}, member{name: "index.html", body: "x"}), status: 400},
		{name: "tar absolute", req: request{method: "POST", path: tarPath, contentType: "application/x-tar"}, body: tarOK(false, member{name: "/etc/cron.d/x", body: "x"}), status: 400, errContains: "absolute"},
		{name: "tar backslash", req: request{method: "POST", path: tarPath, contentType: "application/x-tar"}, body: tarOK(false, member{name: `..\..\x`, body: "x"}), status: 400},
		{name: "tar duplicate", req: request{method: "POST", path: tarPath, contentType: "application/x-tar"}, body: tarOK(false, member{name: "a.html", body: "1"}, member{name: "./a.html", body: "2"}), status: 400, errContains: "same file"},
		{name: "tar corrupt", req: request{method: "POST", path: tarPath, contentType: "application/x-tar", body: bytes.Repeat([]byte("garbage!"), 200)}, status: 400, errContains: "corrupt"},
		{name: "tar truncated", req: request{method: "POST", path: tarPath, contentType: "application/x-tar"}, body: truncated, status: 400, errContains: "corrupt"},
		{name: "tar empty", req: request{method: "POST", path: tarPath, contentType: "application/x-tar"}, body: tarOK(false, member{name: "dir/", typ: tar.TypeDir}), status: 400, errContains: "no files"},
		{name: "gzip not gzip", req: request{method: "POST", path: tarPath, contentType: "application/gzip", body: []byte("plain text, not gzip")}, status: 400, errContains: "gzip"},
		{name: "gzip bad checksum", req: request{method: "POST", path: tarPath, contentType: "application/gzip"}, body: badGzipCRC, status: 400, errContains: "gzip"},
		{name: "gzip of garbage", req: request{method: "POST", path: tarPath, contentType: "application/x-gzip"}, body: gzipGarbage, status: 400, errContains: "corrupt"},
		{name: "gzip symlink", req: request{method: "POST", path: tarPath + "?publish=true", contentType: "application/gzip"}, body: tarOK(true, member{name: "index.html", body: "hi"}, member{name: "x", typ: tar.TypeSymlink, linkname: "../../x"}), status: 400, errContains: "symbolic link"},
		{name: "tar over MaxTarBytes", cfg: builder.Config{MaxTarBytes: 4096}, req: request{method: "POST", path: tarPath, contentType: "application/x-tar"}, body: tarOK(false, member{name: "big", body: strings.Repeat("x", 8192)}), status: 413},
		{name: "tar over MaxTarBytes, chunked", cfg: builder.Config{MaxTarBytes: 4096}, req: request{method: "POST", path: tarPath, contentType: "application/x-tar", chunked: true}, body: tarOK(false, member{name: "big", body: strings.Repeat("x", 8192)}), status: 413},
		{name: "gzip expanding past MaxTarBytes", cfg: builder.Config{MaxTarBytes: 8192, MaxBlobBytes: 1 << 20}, req: request{method: "POST", path: tarPath, contentType: "application/gzip"}, body: tarOK(true, member{name: "a", body: strings.Repeat("x", 6000)}, member{name: "b", body: strings.Repeat("y", 6000)}), status: 413},
		{name: "tar member over MaxBlobBytes", cfg: builder.Config{MaxBlobBytes: 100}, req: request{method: "POST", path: tarPath, contentType: "application/x-tar"}, body: tarOK(false, member{name: "big", body: strings.Repeat("x", 101)}), status: 413, errContains: "big"},
		{name: "tar too many files", cfg: builder.Config{MaxFiles: 2}, req: request{method: "POST", path: tarPath, contentType: "application/x-tar"}, body: tarOK(false, member{name: "a", body: "a"}, member{name: "b", body: "b"}, member{name: "c", body: "c"}), status: 413},
		{name: "tar bad publish flag", req: request{method: "POST", path: tarPath + "?publish=maybe", contentType: "application/x-tar"}, body: tarOK(false, member{name: "a", body: "a"}), status: 400, errContains: "publish"},
		{name: "tar unknown site", req: request{method: "POST", path: "/v1/sites/nosuch/deploys", contentType: "application/x-tar"}, body: tarOK(false, member{name: "a", body: "a"}), status: 404},

		// Blobs.
		{name: "blob invalid hash", req: request{method: "PUT", path: "/v1/blobs/" + strings.ToUpper(h), contentType: "application/octet-stream", body: []byte("hello")}, status: 400, errContains: "SHA-256"},
		{name: "blob short hash", req: request{method: "PUT", path: "/v1/blobs/abc", contentType: "application/octet-stream", body: []byte("hello")}, status: 400},
		{name: "blob mismatch", req: request{method: "PUT", path: "/v1/blobs/" + h, contentType: "application/octet-stream", body: []byte("hellO")}, status: 400, errContains: "got sha256 " + sha("hellO")},
		{name: "blob over MaxBlobBytes, chunked", cfg: builder.Config{MaxBlobBytes: 4}, req: request{method: "PUT", path: "/v1/blobs/" + h, contentType: "application/octet-stream", body: []byte("hello"), chunked: true}, status: 413},
		{name: "blob over MaxBlobBytes", cfg: builder.Config{MaxBlobBytes: 4}, req: request{method: "PUT", path: "/v1/blobs/" + h, contentType: "application/octet-stream", body: []byte("hello")}, status: 413},

		// Deploys by id.
		{name: "get unknown deploy", req: request{method: "GET", path: "/v1/deploys/nosuch"}, status: 404, errContains: "nosuch"},
		{name: "get invalid deploy id", req: request{method: "GET", path: "/v1/deploys/NO-SUCH"}, status: 404},
		{name: "finalize unknown deploy", req: request{method: "POST", path: "/v1/deploys/nosuch/finalize"}, status: 404},
		{name: "publish unknown deploy", req: request{method: "POST", path: "/v1/deploys/nosuch/publish"}, status: 404},
	}
	// One store for every row: each row's API (its own limits) runs over
	// it, and the rows take turns, each checking that it changed nothing.
	meta, blobs := buildertest.NewMeta(t), buildertest.NewBlobs(t.TempDir())
	setup := buildertest.Start(t, builder.Config{}, meta, blobs)
	createSite(t, setup, "demo", "www.example.com")
	createSite(t, setup, "second")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := buildertest.Start(t, tt.cfg, meta, blobs)
			before, applied, stored := srv.Meta.State(t), srv.Meta.AppliedIndex(), srv.Blobs.Hashes()

			req := tt.req
			if tt.body != nil {
				req.body = tt.body(t)
			}
			res := do(t, srv, req)
			if res.status != tt.status {
				t.Fatalf("got status %d, want %d; body %s", res.status, tt.status, res.body)
			}
			e := res.errorBody(t)
			t.Logf("%d %s", res.status, e.Error)
			if !strings.Contains(e.Error, tt.errContains) {
				t.Errorf("error %q does not mention %q", e.Error, tt.errContains)
			}
			if got := srv.Meta.State(t); got != before {
				t.Errorf("metadata changed:\n got %s\nwant %s", got, before)
			}
			if got := srv.Meta.AppliedIndex(); got != applied && !tt.fsmDecides {
				t.Errorf("%d commands reached the log; want none before validation passes", got-applied)
			}
			if got := srv.Blobs.Hashes(); !slices.Equal(got, stored) {
				t.Errorf("blobs stored: %v, want %v", got, stored)
			}
			if tt.status == http.StatusUnauthorized && !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", res.header.Get("WWW-Authenticate"))
			}
		})
	}
}

// TestBlobMismatchReportsHashes checks the machine-readable got/want fields.
func TestBlobMismatchReportsHashes(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	res := do(t, srv, request{method: "PUT", path: "/v1/blobs/" + sha("right"), contentType: "application/octet-stream", body: []byte("wrong")})
	e := res.errorBody(t)
	if res.status != 400 || e.Got != sha("wrong") || e.Want != sha("right") {
		t.Errorf("got status %d got=%q want=%q; want 400 with got=%s want=%s", res.status, e.Got, e.Want, sha("wrong"), sha("right"))
	}
}
