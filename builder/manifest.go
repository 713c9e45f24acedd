package builder

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/atoll-hosting/atoll"
)

// decodeJSON reads one JSON object of at most MaxJSONBytes into v, refusing
// unknown fields and trailing data.
func (a *API) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if r.ContentLength > a.cfg.MaxJSONBytes {
		return errorf(http.StatusRequestEntityTooLarge, "request body larger than the limit of %d bytes", a.cfg.MaxJSONBytes)
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, a.cfg.MaxJSONBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return jsonError(err)
		}
		return errorf(http.StatusBadRequest, "malformed JSON: unexpected data after the object")
	}
	return nil
}

var errEmptyBody = errorf(http.StatusBadRequest, "request body is empty: send a JSON object")

// jsonError turns a decoding failure into a 400 (or 413 for an oversized
// body) that says what is wrong.
func jsonError(err error) error {
	var mbe *http.MaxBytesError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "request body larger than the limit of %d bytes", mbe.Limit)
	case errors.Is(err, io.EOF):
		return errEmptyBody
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "malformed JSON: the body ends in the middle of a value")
	case errors.As(err, &syn):
		return errorf(http.StatusBadRequest, "malformed JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		if typ.Field != "" {
			return errorf(http.StatusBadRequest, "field %q must be %s, not %s", typ.Field, typeName(typ.Type.String()), typ.Value)
		}
		return errorf(http.StatusBadRequest, "malformed JSON: expected %s, got %s", typeName(typ.Type.String()), typ.Value)
	}
	// Unknown fields and other decoder complaints ("json: unknown field ...").
	return errorf(http.StatusBadRequest, "invalid JSON request: %s", strings.TrimPrefix(err.Error(), "json: "))
}

func typeName(t string) string {
	switch {
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "[]"), strings.HasPrefix(t, "*[]"):
		return "an array"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "*int"):
		return "an integer"
	}
	return "an object"
}

// maxInterned bounds the distinct hashes parseManifest shares strings for.
const maxInterned = 1 << 16

// parseManifest reads {"files": {"/path": "<sha256>", ...}} as a stream, so
// a million-entry manifest never sits in memory twice, and checks every
// entry: paths go through atoll.CleanPath, hashes through atoll.ValidHash, two
// names of the same path (also "/a" and "a", or a key repeated in the JSON)
// are refused, and more than maxFiles entries is a 413 (site names the
// site in its message). Entries whose path is not atoll.Published are
// dropped and counted. It returns the entries sorted by normalized path and
// the count dropped.
//
// Memory: a million entries are a million paths and hashes, held once, in
// the slice returned (sorted in place); the rare names sent in another form
// than their clean path are kept on the side, only to name duplicates.
func parseManifest(r io.Reader, site string, maxFiles int) ([]atoll.File, int, error) {
	m := &manifestParser{dec: json.NewDecoder(r), site: site, maxFiles: maxFiles, interned: make(map[string]string)}
	if err := m.readBody(); err != nil {
		return nil, 0, err
	}
	files, err := m.sorted()
	return files, m.skipped, err
}

// manifestParser holds what parseManifest has read so far.
type manifestParser struct {
	dec      *json.Decoder
	site     string
	maxFiles int
	skipped  int // entries not atoll.Published
	entries  []atoll.File
	renamed  []atoll.File // {Path, the name as sent} where they differ
	// interned shares one string per distinct hash among the entries (sites
	// repeat content: the same icon or page in many folders), up to
	// maxInterned hashes so that it stays small when they do not.
	interned map[string]string
}

// readBody reads the whole body: one object whose only field, "files",
// appears once, and nothing after it.
func (m *manifestParser) readBody() error {
	if err := expectDelim(m.dec, '{', "the body must be a JSON object"); err != nil {
		return err
	}
	seenFiles := false
	for m.dec.More() {
		key, err := m.dec.Token()
		if err != nil {
			return tokenError(err)
		}
		if key != "files" {
			return errorf(http.StatusBadRequest, "invalid JSON request: unknown field %q (only \"files\" is accepted)", key)
		}
		if seenFiles {
			return errorf(http.StatusBadRequest, "invalid JSON request: field \"files\" appears twice")
		}
		seenFiles = true
		if err := m.readFiles(); err != nil {
			return err
		}
	}
	if _, err := m.dec.Token(); err != nil { // the closing '}'
		return tokenError(err)
	}
	if _, err := m.dec.Token(); err != io.EOF {
		if err != nil {
			return tokenError(err)
		}
		return errorf(http.StatusBadRequest, "malformed JSON: unexpected data after the object")
	}
	return nil
}

// readFiles reads the "files" object, entry by entry.
func (m *manifestParser) readFiles() error {
	if err := expectDelim(m.dec, '{', `"files" must be an object of path -> sha256`); err != nil {
		if errors.Is(err, errEmptyBody) {
			return tokenError(io.EOF)
		}
		return err
	}
	for m.dec.More() {
		tok, err := m.dec.Token()
		if err != nil {
			return tokenError(err)
		}
		name := tok.(string) // object keys are always strings
		if tok, err = m.dec.Token(); err != nil {
			return tokenError(err)
		}
		hash, ok := tok.(string)
		if !ok {
			return errorf(http.StatusBadRequest, "file %q: the value must be the file's SHA-256 as a hex string", name)
		}
		if err := m.add(name, hash); err != nil {
			return err
		}
	}
	if _, err := m.dec.Token(); err != nil { // the closing '}'
		return tokenError(err)
	}
	return nil
}

// add checks one entry as sent and keeps it under its clean path.
func (m *manifestParser) add(name, hash string) error {
	p, err := atoll.CleanPath(name)
	if err != nil {
		return errorf(http.StatusBadRequest, "invalid file %s", pathProblem(err))
	}
	if !atoll.ValidHash(hash) {
		return errorf(http.StatusBadRequest, "file %q: %q is not a SHA-256 in lowercase hex (64 characters of 0-9a-f)", name, hash)
	}
	if !atoll.Published(p) {
		m.skipped++
		return nil
	}
	if len(m.entries) >= m.maxFiles {
		return tooManyFiles(m.site, m.maxFiles)
	}
	if name != p {
		m.renamed = append(m.renamed, atoll.File{Path: p, Hash: name})
	}
	if h, ok := m.interned[hash]; ok {
		hash = h
	} else if len(m.interned) < maxInterned {
		m.interned[hash] = hash
	}
	m.entries = append(m.entries, atoll.File{Path: p, Hash: hash})
	return nil
}

// sorted returns the entries sorted by path, refusing an empty manifest and
// two entries of the same path. Sorting finds duplicates without a second
// index of every path.
func (m *manifestParser) sorted() ([]atoll.File, error) {
	if len(m.entries) == 0 {
		return nil, errorf(http.StatusBadRequest, `a deploy needs at least one file: send {"files": {"/index.html": "<sha256>", ...}}`)
	}
	slices.SortFunc(m.entries, func(a, b atoll.File) int { return strings.Compare(a.Path, b.Path) })
	for i := 1; i < len(m.entries); i++ {
		if p := m.entries[i].Path; m.entries[i-1].Path == p {
			return nil, m.duplicate(p)
		}
	}
	return m.entries, nil
}

// duplicate names two of the entries of path p as they were sent: the
// renamed ones first, then the path itself (sent as is at least once
// unless two or more were renamed).
func (m *manifestParser) duplicate(p string) error {
	var names []string
	for _, r := range m.renamed {
		if r.Path == p {
			names = append(names, r.Hash)
		}
	}
	names = append(names, p, p)
	return errorf(http.StatusBadRequest, "duplicate path: %q and %q are the same file %q", names[0], names[1], p)
}

// tokenError is jsonError for a failure inside the object, where the end
// of the body is the middle of a value.
func tokenError(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return jsonError(err)
}

func expectDelim(dec *json.Decoder, want json.Delim, msg string) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return errorf(http.StatusBadRequest, "malformed JSON: %s", msg)
	}
	return nil
}

// pathProblem is atoll.CleanPath's complaint without its sentinel prefix:
// `path "/a/../b": dot segment`.
func pathProblem(err error) string {
	return strings.TrimPrefix(err.Error(), atoll.ErrInvalid.Error()+": ")
}
