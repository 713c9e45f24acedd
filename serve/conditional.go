package serve

import (
	"bytes"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// makeETag returns the strong entity tag of one representation of a blob:
// the content hash for the identity bytes, the hash and the coding for a
// compressed variant, since its bytes differ.
func makeETag(hash, coding string) string {
	if coding == "" {
		return `"` + hash + `"`
	}
	return `"` + hash + "-" + coding + `"`
}

// etagListMatches reports whether a list-valued If-None-Match or If-Match
// field (possibly several field lines) matches etag. "*" matches any
// current representation. With weak set, tags compare with the weak
// function of RFC 9110 section 8.8.3.2 (a W/ prefix on either side is
// ignored); otherwise strongly (a weak tag, in the list or etag itself,
// never matches). Parsing stops at the first malformed element.
func etagListMatches(values [][]byte, etag string, weak bool) bool {
	etagWeak := strings.HasPrefix(etag, "W/")
	if etagWeak {
		etag = etag[2:]
	}
	for _, v := range values {
		for {
			v = bytes.TrimLeft(v, " \t,")
			if len(v) == 0 {
				break
			}
			if v[0] == '*' {
				return true
			}
			isWeak := false
			if bytes.HasPrefix(v, []byte("W/")) {
				isWeak, v = true, v[2:]
			}
			if len(v) == 0 || v[0] != '"' {
				break // malformed
			}
			end := bytes.IndexByte(v[1:], '"')
			if end < 0 {
				break // malformed
			}
			tag := v[:end+2]
			v = v[end+2:]
			if (weak || !isWeak && !etagWeak) && string(tag) == etag {
				return true
			}
		}
	}
	return false
}

// precondition is the outcome of a request's conditional header fields.
type precondition int

const (
	preconditionPass precondition = iota
	preconditionNotModified
	preconditionFailed
)

// evalPreconditions applies RFC 9110 section 13.2.2 for a GET or HEAD of a
// representation with the given entity tag and modification time (zero when
// unknown): If-Match, else If-Unmodified-Since, may fail the request (412);
// then If-None-Match, else If-Modified-Since, may answer 304. If-Range is
// handled with the Range header.
func evalPreconditions(h *fasthttp.RequestHeader, etag string, modified time.Time) precondition {
	if v := h.PeekAll(fasthttp.HeaderIfMatch); len(v) > 0 {
		if !etagListMatches(v, etag, false) {
			return preconditionFailed
		}
	} else if v := h.Peek(fasthttp.HeaderIfUnmodifiedSince); len(v) > 0 && !modified.IsZero() {
		if t, err := fasthttp.ParseHTTPDate(v); err == nil && modified.After(t) {
			return preconditionFailed
		}
	}
	if v := h.PeekAll(fasthttp.HeaderIfNoneMatch); len(v) > 0 {
		if etagListMatches(v, etag, true) {
			return preconditionNotModified
		}
	} else if v := h.Peek(fasthttp.HeaderIfModifiedSince); len(v) > 0 && !modified.IsZero() {
		if t, err := fasthttp.ParseHTTPDate(v); err == nil && !modified.After(t) {
			return preconditionNotModified
		}
	}
	return preconditionPass
}

// ifRangeHolds reports whether a Range header may be honoured given the
// request's If-Range value (RFC 9110 section 13.1.5): absent, a strong match
// of the identity entity tag (ranges are always cut from the identity
// bytes), or exactly the Last-Modified date. Anything else, weak tags
// included, means "send the whole representation".
func ifRangeHolds(v []byte, identityETag string, modified time.Time) bool {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return true
	}
	if v[0] == '"' || bytes.HasPrefix(v, []byte("W/")) {
		return string(v) == identityETag
	}
	if modified.IsZero() {
		return false
	}
	t, err := fasthttp.ParseHTTPDate(v)
	return err == nil && t.Equal(modified)
}
