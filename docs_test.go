package atoll

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
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
	anchors := map[string]map[string]bool{} // markdown file -> its heading anchors
	checked := 0
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				file, anchor, ok := linkTarget(m[1])
				if !ok {
					continue
				}
				checked++
				resolved := name
				if file != "" {
					resolved = path.Join(path.Dir(filepath.ToSlash(name)), file)
				}
				if strings.HasPrefix(resolved, "../") {
					t.Errorf("%s:%d links to %s, outside the repository", name, i+1, m[1])
					continue
				}
				if _, err := os.Stat(filepath.FromSlash(resolved)); err != nil {
					t.Errorf("%s:%d links to %s, which does not exist (%s)", name, i+1, m[1], resolved)
					continue
				}
				if anchor == "" || !strings.HasSuffix(resolved, ".md") {
					continue
				}
				if anchors[resolved] == nil {
					anchors[resolved] = headingAnchors(t, resolved)
				}
				if !anchors[resolved][anchor] {
					t.Errorf("%s:%d links to %s, but %s has no heading with the anchor #%s", name, i+1, m[1], resolved, anchor)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("found no relative link in any markdown file; is the link pattern wrong?")
	}
}

func TestLinkTarget(t *testing.T) {
	tests := []struct {
		name, link, file, anchor string
		ok                       bool
	}{
		{"file", "docs/API.md", "docs/API.md", "", true},
		{"file with anchor", "OPERATIONS.md#backups", "OPERATIONS.md", "backups", true},
		{"parent folder", "../raft/DESIGN.md", "../raft/DESIGN.md", "", true},
		{"anchor on the same page", "#limits", "", "limits", true},
		{"web page", "https://example.com/a.md", "", "", false},
		{"mail", "mailto:ops@example.com", "", "", false},
		{"absolute path", "/etc/passwd", "/etc/passwd", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file, anchor, ok := linkTarget(tt.link)
			if file != tt.file || anchor != tt.anchor || ok != tt.ok {
				t.Errorf("linkTarget(%q) = %q, %q, %v; want %q, %q, %v", tt.link, file, anchor, ok, tt.file, tt.anchor, tt.ok)
			}
		})
	}
}

// linkTarget splits a link into the file it points to inside the
// repository ("" for the same page) and its anchor, and returns false for
// links that leave the repository by design (web addresses, mail).
func linkTarget(link string) (file, anchor string, ok bool) {
	if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
		return "", "", false
	}
	file, anchor, _ = strings.Cut(link, "#")
	return file, anchor, file != "" || anchor != ""
}

func TestHeadingAnchor(t *testing.T) {
	tests := []struct{ heading, want string }{
		{"Limits and timeouts", "limits-and-timeouts"},
		{"Scrub: bit rot is found and repaired", "scrub-bit-rot-is-found-and-repaired"},
		{"`atoll server`", "atoll-server"},
		{"`atoll deploys --site NAME` and `atoll rollback`", "atoll-deploys---site-name-and-atoll-rollback"},
		{"Serving handler (before -> after)", "serving-handler-before---after"},
		{"snake_case stays", "snake_case-stays"},
	}
	for _, tt := range tests {
		t.Run(tt.heading, func(t *testing.T) {
			if got := headingAnchor(tt.heading); got != tt.want {
				t.Errorf("headingAnchor(%q) = %q, want %q", tt.heading, got, tt.want)
			}
		})
	}
}

// headingAnchors returns the anchors of the headings of a markdown file,
// outside fenced code blocks, numbered as GitHub numbers repeats ("x",
// "x-1", ...).
func headingAnchors(t *testing.T, name string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(name))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		text, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if fenced || !strings.HasPrefix(line, "#") || !ok {
			continue
		}
		a := headingAnchor(text)
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// headingAnchor is the anchor GitHub gives a heading: lower case, spaces
// to hyphens, every other character but letters, digits, "-" and "_"
// dropped.
func headingAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
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
