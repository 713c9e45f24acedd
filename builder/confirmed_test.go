package builder_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/builder/buildertest"
)

// watchedBlobs is a buildertest.Blobs that records which hashes each
// StatMany asks about, can hide blobs (a copy lost after the create step)
// and has a membership, like a node's.
type watchedBlobs struct {
	*buildertest.Blobs
	mu         sync.Mutex
	asked      [][]string
	hidden     map[string]bool
	membership string
}

func (b *watchedBlobs) StatMany(ctx context.Context, hashes []string) (map[string]blobstore.Info, error) {
	b.mu.Lock()
	b.asked = append(b.asked, slices.Clone(hashes))
	hidden := b.hidden
	b.mu.Unlock()
	out, err := b.Blobs.StatMany(ctx, hashes)
	for h := range hidden {
		delete(out, h)
	}
	return out, err
}

func (b *watchedBlobs) Membership() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.membership
}

func (b *watchedBlobs) set(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f()
}

func (b *watchedBlobs) lastAsked() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.asked[len(b.asked)-1]
}

func newWatchedServer(t *testing.T) (*buildertest.Server, *watchedBlobs) {
	t.Helper()
	meta := buildertest.NewMeta(t)
	blobs := &watchedBlobs{Blobs: buildertest.NewBlobs(t.TempDir()), membership: "3,core1,core2,core3"}
	api, err := builder.New(builder.Config{TempDir: t.TempDir(), Domain: "localhost"}, meta, blobs)
	if err != nil {
		t.Fatal(err)
	}
	return &buildertest.Server{Server: buildertest.Serve(t, api), API: api, Meta: meta, Blobs: blobs.Blobs}, blobs
}

// TestPublishAsksOnlyAboutUploadedBlobs: right after the create step, the
// publish asks the store about the blobs the client had to upload, not about
// the whole manifest again, and still records the deploy's full size.
func TestPublishAsksOnlyAboutUploadedBlobs(t *testing.T) {
	srv, blobs := newWatchedServer(t)
	createSite(t, srv, "demo")
	a, b, c := "<h1>a</h1>", "body{}", "new content"
	putBlob(t, srv, a)
	putBlob(t, srv, b)
	var d atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/demo/deploys", body: manifest(map[string]string{
		"/a.html": sha(a), "/b.css": sha(b), "/c.txt": sha(c), "/d.txt": sha(c),
	})}, 201, &d)
	if !slices.Equal(d.Required, []string{sha(c)}) {
		t.Fatalf("required = %v, want [%s]", d.Required, sha(c))
	}
	putBlob(t, srv, c)
	call(t, srv, request{method: "POST", path: "/v1/deploys/" + d.ID + "/publish"}, 200, &d)
	if got, want := blobs.lastAsked(), []string{sha(c)}; !slices.Equal(got, want) {
		t.Errorf("publish asked about %v, want only the uploaded %v", got, want)
	}
	call(t, srv, request{method: "GET", path: "/v1/deploys/" + d.ID}, 200, &d)
	if want := int64(len(a) + len(b) + 2*len(c)); d.State != atoll.StatePublished || d.Bytes != want {
		t.Errorf("deploy = %s, %d bytes; want published, %d bytes", d.State, d.Bytes, want)
	}
}

// TestPublishRechecksEverythingAfterMembershipChange: once the owners of
// blobs may have changed, the create step's answer no longer counts: a blob
// the new owners lack refuses the publish with 409 and names it.
func TestPublishRechecksEverythingAfterMembershipChange(t *testing.T) {
	srv, blobs := newWatchedServer(t)
	createSite(t, srv, "demo")
	a, b := "<h1>a</h1>", "body{}"
	putBlob(t, srv, a)
	putBlob(t, srv, b)
	var d atoll.DeployResponse
	call(t, srv, request{method: "POST", path: "/v1/sites/demo/deploys", body: manifest(map[string]string{
		"/a.html": sha(a), "/b.css": sha(b),
	})}, 201, &d)
	if len(d.Required) != 0 || d.State != atoll.StateReady {
		t.Fatalf("created deploy: %s, required %v; want ready, nothing required", d.State, d.Required)
	}
	blobs.set(func() {
		blobs.membership = "3,core1,core2,core4"
		blobs.hidden = map[string]bool{sha(b): true}
	})
	res := do(t, srv, request{method: "POST", path: "/v1/deploys/" + d.ID + "/publish"})
	if e := res.errorBody(t); res.status != http.StatusConflict || !slices.Equal(e.Missing, []string{sha(b)}) {
		t.Fatalf("publish after membership change: got %d missing=%v; want 409 missing=[%s]", res.status, e.Missing, sha(b))
	}
	if s, _ := srv.Meta.Site("demo"); s.Published != "" {
		t.Errorf("site published %q with a blob its owners lack", s.Published)
	}
}
