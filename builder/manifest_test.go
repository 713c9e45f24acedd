package builder

import (
	"fmt"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll"
)

// TestParseManifestLarge: every entry of a large manifest comes back once,
// with its hash, sorted by clean path, names sent in another form included.
func TestParseManifestLarge(t *testing.T) {
	const n = 50_000
	var b strings.Builder
	want := map[string]string{}
	b.WriteString(`{"files":{`)
	for i := n - 1; i >= 0; i-- { // reverse order: the result must be sorted
		name := fmt.Sprintf("/d%03d/f%05d.html", i%7, i)
		if i%1000 == 0 {
			name = name[1:] // sent without the leading slash
		}
		h := fmt.Sprintf("%064x", i%300)
		p, err := atoll.CleanPath(name)
		if err != nil {
			t.Fatal(err)
		}
		want[p] = h
		if i != n-1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%q", name, h)
	}
	b.WriteString(`}}`)
	files, _, err := parseManifest(strings.NewReader(b.String()), "test", n)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != n {
		t.Fatalf("got %d files, want %d", len(files), n)
	}
	for i, f := range files {
		if i > 0 && files[i-1].Path >= f.Path {
			t.Fatalf("files[%d] = %q after %q: not sorted", i, f.Path, files[i-1].Path)
		}
		if want[f.Path] != f.Hash {
			t.Fatalf("file %q has hash %q, want %q", f.Path, f.Hash, want[f.Path])
		}
	}
}

// TestParseManifestDuplicateNames: a duplicate is reported with the names
// as the client sent them.
func TestParseManifestDuplicateNames(t *testing.T) {
	h := strings.Repeat("a", 64)
	for _, tc := range []struct {
		name, body, want string
	}{
		{"repeated key", `{"files":{"/a":"` + h + `","/b":"` + h + `","/a":"` + h + `"}}`, `"/a" and "/a" are the same file "/a"`},
		{"slash", `{"files":{"/a":"` + h + `","a":"` + h + `"}}`, `"a" and "/a" are the same file "/a"`},
		{"renamed twice", `{"files":{"a":"` + h + `","/b":"` + h + `","a":"` + h + `"}}`, `"a" and "a" are the same file "/a"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseManifest(strings.NewReader(tc.body), "test", 10)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseManifest = %v, want an error containing %s", err, tc.want)
			}
		})
	}
}
