package atoll

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The repository stands alone: its docs and code never point at files
// outside it, and every relative link between its markdown files resolves.
// These tests read the files git tracks (every file of the tree when git is
// not available), from the repository root, which is this package's folder.

// outsidePaths are spellings of paths outside the repository. They are built
// from parts so that this file does not match them itself.
var outsidePaths = []string{
	".." + "/shared",
	"/" + "work/",
}

func TestDocsAndCodeStayInsideTheRepo(t *testing.T) {
	files := trackedFiles(t, ".md", ".go")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range bytes.Split(b, []byte("\n")) {
			for _, p := range outsidePaths {
				if bytes.Contains(line, []byte(p)) {
					t.Errorf("%s:%d refers to %q, a path outside the repository: %s",
						name, i+1, p, strings.TrimSpace(string(line)))
				}
			}
		}
	}
}

// mdLink matches the target of an inline markdown link or image:
// "](target)" or "](target "title")".
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)

func TestDocLinksResolve(t *testing.T) {
	files := trackedFiles(t, ".md")
	checked := 0
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target, ok := relativeTarget(m[1])
				if !ok {
					continue
				}
				checked++
				resolved := path.Join(path.Dir(filepath.ToSlash(name)), target)
				if strings.HasPrefix(resolved, "../") {
					t.Errorf("%s:%d links to %s, outside the repository", name, i+1, m[1])
					continue
				}
				if _, err := os.Stat(filepath.FromSlash(resolved)); err != nil {
					t.Errorf("%s:%d links to %s, which does not exist (%s)", name, i+1, m[1], resolved)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("found no relative link in any markdown file; is the link pattern wrong?")
	}
}

func TestRelativeTarget(t *testing.T) {
	tests := []struct {
		name, link, want string
		ok               bool
	}{
		{"file", "docs/API.md", "docs/API.md", true},
		{"file with anchor", "OPERATIONS.md#backups", "OPERATIONS.md", true},
		{"parent folder", "../raft/DESIGN.md", "../raft/DESIGN.md", true},
		{"anchor only", "#limits", "", false},
		{"web page", "https://example.com/a.md", "", false},
		{"mail", "mailto:ops@example.com", "", false},
		{"absolute path", "/etc/passwd", "/etc/passwd", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := relativeTarget(tt.link)
			if got != tt.want || ok != tt.ok {
				t.Errorf("relativeTarget(%q) = %q, %v; want %q, %v", tt.link, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// relativeTarget returns the file a link points to inside the repository,
// without its anchor, and false for links that leave it by design (web
// addresses, mail) or stay on the page (anchors).
func relativeTarget(link string) (string, bool) {
	if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
		return "", false
	}
	target, _, _ := strings.Cut(link, "#")
	return target, target != ""
}

// trackedFiles returns the files git tracks whose names end in one of exts,
// as slash-separated paths relative to the repository root. Without git (a
// source tarball) it walks the tree instead, skipping hidden folders.
func trackedFiles(t *testing.T, exts ...string) []string {
	t.Helper()
	keep := func(name string) bool {
		for _, e := range exts {
			if strings.HasSuffix(name, e) {
				return true
			}
		}
		return false
	}
	var out []string
	if b, err := exec.Command("git", "ls-files", "-z").Output(); err == nil {
		for _, name := range strings.Split(string(b), "\x00") {
			if name != "" && keep(name) {
				if _, err := os.Stat(name); err == nil { // deleted but not yet staged
					out = append(out, name)
				}
			}
		}
	} else {
		err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir() && p != "." && strings.HasPrefix(d.Name(), "."):
				return filepath.SkipDir
			case !d.IsDir() && keep(p):
				out = append(out, filepath.ToSlash(p))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %v files found from %s", exts, mustGetwd(t))
	}
	return out
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
