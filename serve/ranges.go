package serve

import (
	"bytes"
	"math"
)

// rangeKind is how a Range header applies to a representation.
type rangeKind int

const (
	// rangeNone: no usable Range; send the whole representation (200). Covers
	// an absent header, other units, syntax errors and multiple ranges.
	rangeNone rangeKind = iota
	// rangeSingle: one satisfiable byte range (206).
	rangeSingle
	// rangeUnsatisfiable: one range that selects no byte of the content (416).
	rangeUnsatisfiable
)

// byteRange is a satisfiable range: length > 0 bytes from start, with
// start+length <= size.
type byteRange struct {
	start, length int64
}

// parseRange interprets a Range header value (RFC 9110 section 14.2) against
// content of size bytes. Only a single range of unit "bytes" is honoured:
// "bytes=a-b", "bytes=a-" or "bytes=-n". Several ranges are ignored on
// purpose (rangeNone): multipart/byteranges is rarely used by browsers or
// download tools, and a full 200 is always a correct answer. Syntax errors
// are ignored the same way, as the RFC asks.
func parseRange(v []byte, size int64) (byteRange, rangeKind) {
	v = bytes.TrimSpace(v)
	const unit = "bytes="
	if len(v) < len(unit) || !bytes.EqualFold(v[:len(unit)], []byte(unit)) {
		return byteRange{}, rangeNone
	}
	var spec []byte
	for elem := range bytes.SplitSeq(v[len(unit):], []byte{','}) {
		elem = bytes.TrimSpace(elem)
		if len(elem) == 0 {
			continue // empty list elements are allowed and ignored
		}
		if spec != nil {
			return byteRange{}, rangeNone // several ranges: send it all
		}
		spec = elem
	}
	if spec == nil || size < 0 {
		return byteRange{}, rangeNone
	}
	first, last, ok := bytes.Cut(spec, []byte{'-'})
	if !ok {
		return byteRange{}, rangeNone
	}
	first, last = bytes.TrimSpace(first), bytes.TrimSpace(last)
	if len(first) == 0 {
		// Suffix range: the last n bytes.
		n, ok := parseDigits(last)
		if !ok {
			return byteRange{}, rangeNone
		}
		if n == 0 || size == 0 {
			return byteRange{}, rangeUnsatisfiable
		}
		n = min(n, size)
		return byteRange{start: size - n, length: n}, rangeSingle
	}
	start, ok := parseDigits(first)
	if !ok {
		return byteRange{}, rangeNone
	}
	end := int64(math.MaxInt64)
	if len(last) > 0 {
		if end, ok = parseDigits(last); !ok || end < start {
			return byteRange{}, rangeNone
		}
	}
	if start >= size {
		return byteRange{}, rangeUnsatisfiable
	}
	end = min(end, size-1)
	return byteRange{start: start, length: end - start + 1}, rangeSingle
}

// parseDigits parses a non-empty run of ASCII digits, saturating at
// math.MaxInt64 instead of overflowing: a huge last-byte-pos then simply
// means "to the end", a huge first-byte-pos "past the end".
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			n = math.MaxInt64
			continue
		}
		n = n*10 + d
	}
	return n, true
}
