package siterules

import (
	"bytes"
	"compress/gzip"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"

	"github.com/atoll-hosting/atoll"
)

// PBKDF2Iterations is the cost of a Basic-Auth password hash: tens of
// milliseconds on one core, paid once per user at deploy time and once per
// credentials the edge has not verified before.
const PBKDF2Iterations = 100_000

// Sources are the contents of a deploy's rule files; nil means absent.
type Sources struct {
	Redirects []byte
	Headers   []byte
}

// Compile parses and validates both files and hashes the Basic-Auth
// passwords. Skipped lines come back as warnings, in file order (the last
// one says how many more were not listed). An error (an *Error, wrapping
// atoll.ErrInvalid) means the rules are refused.
func Compile(src Sources) (*Rules, []Warning, error) {
	var w warnings
	r := &Rules{}
	var err error
	if src.Redirects != nil {
		if r.Redirects, err = parseRedirects(src.Redirects, &w); err != nil {
			return nil, nil, err
		}
	}
	if src.Headers != nil {
		if r.Headers, err = parseHeaders(src.Headers, &w); err != nil {
			return nil, nil, err
		}
	}
	for i := range r.Headers {
		for j := range r.Headers[i].Auth {
			c := &r.Headers[i].Auth[j]
			c.Salt = make([]byte, 16)
			rand.Read(c.Salt) // never fails (crypto/rand documents a crash instead)
			c.Hash = hashPassword(c.password, c.Salt)
			c.password = ""
		}
	}
	list := w.list
	if w.dropped > 0 {
		list = append(list, Warning{Msg: fmt.Sprintf("%d more skipped lines not listed", w.dropped)})
	}
	return r, list, nil
}

func hashPassword(password string, salt []byte) []byte {
	k, err := pbkdf2.Key(sha256.New, password, salt, PBKDF2Iterations, 32)
	if err != nil {
		panic(err) // only a key length out of range fails, and 32 is not
	}
	return k
}

// Verify reports whether user and password match the credential, in time
// that depends on neither (one PBKDF2 whatever the user).
func (c *Credential) Verify(user, password string) bool {
	sum := hashPassword(password, c.Salt)
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(c.User))
	return subtle.ConstantTimeCompare(sum, c.Hash)&userOK == 1
}

// maxDecoded bounds what Decode inflates: the JSON of rules within every
// limit is far smaller.
const maxDecoded = 64 << 20

// Encode returns the form a deploy records: gzip-compressed JSON. It
// refuses rules whose encoding exceeds MaxEncodedBytes.
func Encode(r *Rules) ([]byte, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode rules: %w", err)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // a valid level never fails
	_, _ = zw.Write(js)                                      // a bytes.Buffer never fails
	_ = zw.Close()
	if buf.Len() > MaxEncodedBytes {
		return nil, &Error{File: "_redirects and _headers", Msg: fmt.Sprintf(
			"the compiled rules take %d bytes, more than the %d a deploy may record; shorten the files", buf.Len(), MaxEncodedBytes)}
	}
	return buf.Bytes(), nil
}

// Load decodes what Encode wrote and builds its Matcher.
func Load(b []byte) (*Matcher, error) {
	r, err := Decode(b)
	if err != nil {
		return nil, err
	}
	return NewMatcher(r)
}

// Decode reads what Encode wrote.
func Decode(b []byte) (*Rules, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: decode rules: %v", atoll.ErrInvalid, err)
	}
	js, err := io.ReadAll(io.LimitReader(zr, maxDecoded))
	if err != nil {
		return nil, fmt.Errorf("%w: decode rules: %v", atoll.ErrInvalid, err)
	}
	var r Rules
	if err := json.Unmarshal(js, &r); err != nil {
		return nil, fmt.Errorf("%w: decode rules: %v", atoll.ErrInvalid, err)
	}
	return &r, nil
}
