package builder_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/atolltest"
	"github.com/atoll-hosting/atoll/builder/buildertest"
	"github.com/atoll-hosting/atoll/raft"
)

// request is one API call in a test.
type request struct {
	method, path string
	token        string // "" sends buildertest.Token; "-" sends none
	contentType  string
	body         []byte
	chunked      bool // hide the body's length, so only the server's reader can enforce limits
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) errorBody(t *testing.T) atoll.ErrorResponse {
	t.Helper()
	var e atoll.ErrorResponse
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", r.body, err)
	}
	if e.Error == "" {
		t.Fatalf("error body %q has no \"error\" message", r.body)
	}
	return e
}

func do(t *testing.T, srv *buildertest.Server, req request) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var reqBody io.Reader = bytes.NewReader(req.body)
	if req.chunked {
		reqBody = struct{ io.Reader }{reqBody}
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, srv.URL+req.path, reqBody)
	if err != nil {
		t.Fatal(err)
	}
	switch req.token {
	case "":
		hr.Header.Set("Authorization", "Bearer "+buildertest.Token)
	case "-":
	default:
		hr.Header.Set("Authorization", "Bearer "+req.token)
	}
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	} else if req.body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	res, err := srv.Client().Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: body}
}

// call does req, checks the status and decodes the body into out (if not nil).
func call(t *testing.T, srv *buildertest.Server, req request, wantStatus int, out any) {
	t.Helper()
	res := do(t, srv, req)
	if res.status != wantStatus {
		t.Fatalf("%s %s: got status %d, want %d; body %s", req.method, req.path, res.status, wantStatus, res.body)
	}
	if out != nil {
		if err := json.Unmarshal(res.body, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", req.method, req.path, res.body, err)
		}
	}
}

func jsonBody(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sha is the content address of s.
var sha = atolltest.SHA256Hex[string]

// createSite makes a site through Meta directly.
func createSite(t *testing.T, srv *buildertest.Server, name string, domains ...string) {
	t.Helper()
	err := srv.Meta.Apply(context.Background(), raft.CreateSite{Name: name, Domains: domains, Created: time.Now()})
	if err != nil {
		t.Fatalf("create site %s: %v", name, err)
	}
}

// putBlob stores content through the API.
func putBlob(t *testing.T, srv *buildertest.Server, content string) {
	t.Helper()
	call(t, srv, request{method: "PUT", path: "/v1/blobs/" + sha(content), contentType: "application/octet-stream", body: []byte(content)}, http.StatusCreated, nil)
}

// member is one tar entry.
type member struct {
	name     string
	typ      byte // 0 = regular file
	body     string
	linkname string
}

func makeTar(t testing.TB, gz bool, members ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, m := range members {
		hdr := &tar.Header{Name: m.name, Typeflag: m.typ, Mode: 0o644, Linkname: m.linkname, ModTime: time.Unix(1700000000, 0)}
		switch m.typ {
		case 0:
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(m.body))
		case tar.TypeDir:
			hdr.Mode = 0o755
		case tar.TypeXGlobalHeader:
			hdr = &tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "made by a test"}}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %q: %v", m.name, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, m.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func manifest(files map[string]string) []byte {
	b, _ := json.Marshal(atoll.CreateDeployRequest{Files: files})
	return b
}
