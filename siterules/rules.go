package siterules

import (
	"fmt"
	"strings"

	"github.com/atoll-hosting/atoll"
)

// The files a deploy's rules come from, as manifest paths.
const (
	RedirectsFile = "/_redirects"
	HeadersFile   = "/_headers"
)

// Limits. They bound the deploy step (parsing, hashing passwords) and the
// work of every request (matching is linear in the rules).
const (
	MaxFileBytes        = 1 << 20 // each of _redirects and _headers
	MaxLineBytes        = 4096    // a longer line is skipped with a warning
	MaxRedirects        = 20000   // rules kept from _redirects
	MaxDynamicRedirects = 1000    // of which with placeholders, a splat or query matches
	MaxHeaderBlocks     = 1000    // path blocks of _headers
	MaxHeaderLines      = 4000    // header lines over all blocks
	MaxHeaderValue      = 2048    // bytes of one header value
	MaxPlaceholders     = 16      // placeholders and query matches of one pattern
	MaxUsers            = 32      // Basic-Auth credentials over all blocks
	MaxWarnings         = 100     // warnings reported; the rest are counted
	// MaxEncodedBytes bounds the compiled, compressed rules, which travel
	// in one Raft entry.
	MaxEncodedBytes = 384 << 10
)

// Rules is the compiled form of a deploy's _redirects and _headers. It is
// what the deploy records (Encode) and holds no password in clear.
type Rules struct {
	Redirects []Redirect    `json:"redirects,omitempty"`
	Headers   []HeaderBlock `json:"headers,omitempty"`
}

// Redirect is one rule of _redirects.
type Redirect struct {
	Line   int          `json:"line"`
	From   string       `json:"from"`            // cleaned path pattern, decoded
	Query  []QueryMatch `json:"query,omitempty"` // query parameters the rule requires
	To     string       `json:"to"`              // cleaned path or absolute URL, with placeholders
	Status int          `json:"status"`
	Force  bool         `json:"force,omitempty"`
}

// QueryMatch requires query parameter Key: equal to Value, or, when Value
// is a placeholder (":id"), present with any value, captured.
type QueryMatch struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// HeaderBlock is one path block of _headers.
type HeaderBlock struct {
	Line   int          `json:"line"`
	Path   string       `json:"path"`
	Set    []Header     `json:"set,omitempty"`
	Remove []string     `json:"remove,omitempty"` // canonical names
	Auth   []Credential `json:"auth,omitempty"`
}

// Header is one "Name: value" line, Name in canonical form.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Credential is one Basic-Auth user. Hash is the PBKDF2-SHA256 of the
// password with Salt (PBKDF2Iterations rounds); password is only set
// between parsing and Compile.
type Credential struct {
	User     string `json:"user"`
	Salt     []byte `json:"salt"`
	Hash     []byte `json:"hash"`
	password string
}

// Warning is a line that was skipped.
type Warning struct {
	File string // "_redirects" or "_headers"
	Line int
	Msg  string
}

func (w Warning) String() string {
	switch {
	case w.File == "":
		return w.Msg
	case w.Line == 0:
		return fmt.Sprintf("%s: %s", w.File, w.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", w.File, w.Line, w.Msg)
}

// Error is why rules were refused: a limit passed, or a header the edge
// must keep to itself. It wraps atoll.ErrInvalid.
type Error struct {
	File string
	Line int // 0: the whole file
	Msg  string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

func (e *Error) Unwrap() error { return atoll.ErrInvalid }

// warnings collects Warnings up to MaxWarnings and counts the rest.
type warnings struct {
	list    []Warning
	dropped int
}

func (w *warnings) add(file string, line int, format string, args ...any) {
	if len(w.list) >= MaxWarnings {
		w.dropped++
		return
	}
	w.list = append(w.list, Warning{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// lines calls fn for each line of src with its 1-based number, without the
// line ending; lines over MaxLineBytes are reported to w instead.
func lines(file string, src []byte, w *warnings, fn func(n int, line string)) {
	s := string(src)
	for n := 1; len(s) > 0; n++ {
		line := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		line = strings.TrimSuffix(line, "\r")
		if len(line) > MaxLineBytes {
			w.add(file, n, "line of %d bytes, longer than %d: skipped", len(line), MaxLineBytes)
			continue
		}
		fn(n, line)
	}
}

// checkSize refuses a file over MaxFileBytes.
func checkSize(file string, src []byte) error {
	if len(src) > MaxFileBytes {
		return &Error{File: file, Msg: fmt.Sprintf("%d bytes, more than the limit of %d", len(src), MaxFileBytes)}
	}
	return nil
}
