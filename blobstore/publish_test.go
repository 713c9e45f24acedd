package blobstore

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestPublishVariants checks the step Put, Import and background
// compression share: after it, the blob's variant files are exactly the
// ones given, whatever an earlier copy or pass left.
func TestPublishVariants(t *testing.T) {
	tests := []struct {
		name        string
		stale       []string // variant extensions on disk before
		publish     []string // encodings published
		wantFiles   []string // variant extensions on disk after
		wantChanged bool
	}{
		{name: "new variants beside none", publish: []string{EncodingBrotli, EncodingGzip}, wantFiles: []string{".br", ".gz"}, wantChanged: true},
		{name: "a stale variant of another encoding goes", stale: []string{".zst"}, publish: []string{EncodingBrotli}, wantFiles: []string{".br"}, wantChanged: true},
		{name: "a stale variant of the same encoding is replaced", stale: []string{".br"}, publish: []string{EncodingBrotli}, wantFiles: []string{".br"}, wantChanged: true},
		{name: "no variants removes every stale one", stale: []string{".br", ".zst", ".gz"}, wantChanged: true},
		{name: "nothing to do changes nothing", wantChanged: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			base := filepath.Join(dir, "ab", "ab01")
			for _, ext := range tt.stale {
				plant(t, base+ext, "stale")
			}
			var variants []variantFile
			for _, enc := range tt.publish {
				tmp := filepath.Join(dir, TempFolder, "variant-"+enc)
				plant(t, tmp, "new "+enc)
				variants = append(variants, variantFile{encoding: enc, path: tmp, size: int64(len("new " + enc))})
			}
			plant(t, base, "identity")

			renamed, changed, err := publishVariants(base, variants, true, true)
			if err != nil {
				t.Fatalf("publishVariants: %v", err)
			}
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			if got, want := len(renamed), len(tt.publish); got != want {
				t.Errorf("renamed %d files (%v), want %d", got, renamed, want)
			}
			var got []string
			for _, e := range encodings {
				if _, err := os.Stat(base + e.ext); err == nil {
					got = append(got, e.ext)
				}
			}
			if !slices.Equal(got, tt.wantFiles) {
				t.Errorf("variant files after: %v, want %v", got, tt.wantFiles)
			}
			for _, v := range variants {
				if v.path != "" {
					t.Errorf("variant %s still has temp path %q after its rename", v.encoding, v.path)
				}
				ext, _ := extFor(v.encoding)
				b, err := os.ReadFile(base + ext)
				if err != nil || string(b) != "new "+v.encoding {
					t.Errorf("variant %s holds %q (%v), want the published bytes", v.encoding, b, err)
				}
			}
		})
	}
}
