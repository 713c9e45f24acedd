package builder_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/builder/buildertest"
)

// batchBody is a blob batch of contents, each under its own hash unless
// hashes says otherwise.
func batchBody(t *testing.T, contents []string, hashes ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	for i, c := range contents {
		h := sha(c)
		if i < len(hashes) && hashes[i] != "" {
			h = hashes[i]
		}
		if err := atoll.WriteBlobRecord(&b, h, int64(len(c)), strings.NewReader(c)); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func batchRequest(body []byte) request {
	return request{method: "POST", path: "/v1/blobs", contentType: atoll.BlobBatchContentType, body: body}
}

func TestBlobBatchStoresEveryBlob(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	contents := []string{"<h1>a</h1>", "body{}", "", "<h1>a</h1>"}
	var out atoll.BlobBatchResponse
	call(t, srv, batchRequest(batchBody(t, contents)), http.StatusCreated, &out)
	if got, want := len(out.Blobs), len(contents); got != want {
		t.Fatalf("answer lists %d blobs, want %d", got, want)
	}
	for i, c := range contents {
		if out.Blobs[i].Hash != sha(c) || out.Blobs[i].Size != int64(len(c)) {
			t.Errorf("blob %d = %+v, want %s of %d bytes", i, out.Blobs[i], sha(c), len(c))
		}
		if _, err := srv.Blobs.Stat(t.Context(), sha(c)); err != nil {
			t.Errorf("blob %d not stored: %v", i, err)
		}
	}
}

func TestBlobBatchRefused(t *testing.T) {
	cfg := builder.Config{MaxBatchBytes: 4096, MaxBatchBlobs: 3, MaxBlobBytes: 1000}
	tests := []struct {
		name    string
		req     request
		status  int
		message string
	}{
		{"one blob does not match its hash", batchRequest(batchBody(t, []string{"a", "b", "c"}, "", sha("x"))), http.StatusBadRequest, sha("x")},
		{"too many blobs", batchRequest(batchBody(t, []string{"a", "b", "c", "d"})), http.StatusRequestEntityTooLarge, "more than 3"},
		{"a blob over MaxBlobBytes", batchRequest(batchBody(t, []string{strings.Repeat("a", 1001)})), http.StatusRequestEntityTooLarge, "limit"},
		{"body over MaxBatchBytes", batchRequest(batchBody(t, []string{strings.Repeat("a", 900), strings.Repeat("b", 900), strings.Repeat("c", 900), strings.Repeat("d", 900), strings.Repeat("e", 900)})), http.StatusRequestEntityTooLarge, "4096"},
		{"body over MaxBatchBytes, length unknown", func() request {
			r := batchRequest(batchBody(t, []string{strings.Repeat("a", 900), strings.Repeat("b", 900), strings.Repeat("c", 900)}))
			r.body = append(r.body, bytes.Repeat([]byte{'x'}, 2000)...)
			r.chunked = true
			return r
		}(), http.StatusRequestEntityTooLarge, "4096"},
		{"malformed header", batchRequest([]byte("hello 5\nworld")), http.StatusBadRequest, "malformed"},
		{"body ends inside a blob", batchRequest(batchBody(t, []string{"abc"})[:68]), http.StatusBadRequest, "malformed"},
		{"wrong content type", request{method: "POST", path: "/v1/blobs", contentType: "application/octet-stream", body: batchBody(t, []string{"a"})}, http.StatusUnsupportedMediaType, atoll.BlobBatchContentType},
		{"no token", func() request { r := batchRequest(batchBody(t, []string{"a"})); r.token = "-"; return r }(), http.StatusUnauthorized, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := buildertest.NewServer(t, cfg)
			res := do(t, srv, tt.req)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d; body %s", res.status, tt.status, res.body)
			}
			if msg := res.errorBody(t).Error; !strings.Contains(msg, tt.message) {
				t.Errorf("error %q does not mention %q", msg, tt.message)
			}
		})
	}
}
