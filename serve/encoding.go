package serve

import (
	"bytes"

	"github.com/atoll-hosting/atoll/blobstore"
)

// codings are the content codings the edge can send, in the order it prefers
// them when a client rates several equally: brotli and zstd compress web
// text better than gzip.
var codings = [...]string{"br", "zstd", "gzip"}

// qUnset marks a coding the Accept-Encoding header does not mention.
const qUnset = -1

// acceptEncoding is a parsed Accept-Encoding header: q-values in thousandths
// (0..1000), or qUnset.
type acceptEncoding struct {
	coding   [len(codings)]int // indexed like codings
	identity int
	star     int
}

// parseAcceptEncoding reads every Accept-Encoding field line of a request
// (RFC 9110 section 12.5.3). Coding names are case-insensitive; "x-gzip" is
// gzip. An element with a malformed q-value is ignored; when a coding is
// listed twice its best q counts.
func parseAcceptEncoding(values [][]byte) acceptEncoding {
	ae := acceptEncoding{identity: qUnset, star: qUnset}
	for i := range ae.coding {
		ae.coding[i] = qUnset
	}
	for _, v := range values {
		for elem := range bytes.SplitSeq(v, []byte{','}) {
			name, params, _ := bytes.Cut(elem, []byte{';'})
			name = bytes.TrimSpace(name)
			if len(name) == 0 {
				continue
			}
			q, ok := qParam(params)
			if !ok {
				continue
			}
			var slot *int
			switch {
			case bytes.Equal(name, []byte("*")):
				slot = &ae.star
			case bytes.EqualFold(name, []byte("identity")):
				slot = &ae.identity
			case bytes.EqualFold(name, []byte("x-gzip")):
				slot = &ae.coding[2]
			default:
				for i, c := range codings {
					if bytes.EqualFold(name, []byte(c)) {
						slot = &ae.coding[i]
						break
					}
				}
			}
			if slot != nil && q > *slot {
				*slot = q
			}
		}
	}
	return ae
}

// qParam finds the weight in the parameters that follow a coding
// (";q=0.5"); no weight means 1. It reports false for a malformed weight.
func qParam(params []byte) (int, bool) {
	q := 1000
	for p := range bytes.SplitSeq(params, []byte{';'}) {
		name, value, _ := bytes.Cut(p, []byte{'='})
		name = bytes.TrimSpace(name)
		if !bytes.EqualFold(name, []byte("q")) {
			continue
		}
		var ok bool
		if q, ok = parseQValue(bytes.TrimSpace(value)); !ok {
			return 0, false
		}
	}
	return q, true
}

// parseQValue parses a weight (RFC 9110 section 12.4.2: "0", "0.xyz", "1",
// "1.000") into thousandths.
func parseQValue(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 5 || (b[0] != '0' && b[0] != '1') {
		return 0, false
	}
	q := int(b[0]-'0') * 1000
	if len(b) == 1 {
		return q, true
	}
	if b[1] != '.' {
		return 0, false
	}
	scale := 100
	for _, c := range b[2:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		q += int(c-'0') * scale
		scale /= 10
	}
	if q > 1000 {
		return 0, false
	}
	return q, true
}

// choose picks the representation to send among the identity bytes and the
// stored variants. It returns the coding ("" for identity) and that
// representation's size.
//
// Each stored coding weighs its own q, else the "*" q, else 0 (not listed
// means not acceptable). The highest non-zero weight wins, br > zstd > gzip
// on ties. Identity is the fallback: it competes only when the header names
// it ("identity;q=..."), and then wins only when strictly preferred, since
// on a tie the smaller, encoded bytes are the better answer. When nothing
// is acceptable (say "identity;q=0" and no usable variant) the identity
// bytes are sent anyway, as RFC 9110 section 12.5.3 allows, rather than a
// 406.
func (ae acceptEncoding) choose(info blobstore.Info) (string, int64) {
	bestQ, best := 0, -1
	var bestSize int64
	for _, v := range info.Variants {
		i := codingIndex(v.Encoding)
		if i < 0 {
			continue
		}
		q := ae.coding[i]
		if q == qUnset {
			q = max(ae.star, 0)
		}
		if q > bestQ || (q == bestQ && q > 0 && i < best) {
			bestQ, best, bestSize = q, i, v.Size
		}
	}
	if best < 0 {
		return "", info.Size
	}
	if ae.identity > bestQ {
		return "", info.Size
	}
	return codings[best], bestSize
}

func codingIndex(enc string) int {
	for i, c := range codings {
		if c == enc {
			return i
		}
	}
	return -1
}
