package siterules

import (
	"fmt"
	"net/textproto"
	"strings"
)

const headersName = "_headers"

// forbidden are the headers a _headers file may neither set nor remove:
// they frame the message, carry its validators or negotiation, or belong
// to the edge's authentication and redirects.
var forbidden = map[string]bool{
	"Accept-Ranges": true, "Age": true, "Authorization": true, "Connection": true,
	"Content-Encoding": true, "Content-Length": true, "Content-Range": true,
	"Date": true, "Etag": true, "Host": true, "Keep-Alive": true,
	"Last-Modified": true, "Location": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Proxy-Connection": true, "Te": true,
	"Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Vary": true,
	"Www-Authenticate": true,
}

// basicAuth is the pseudo-header that protects a block's paths.
const basicAuth = "Basic-Auth"

// headerState is the parser's position in a _headers file.
type headerState struct {
	w      *warnings
	blocks []HeaderBlock
	cur    *HeaderBlock // nil: no block yet, or the current one was skipped
	skip   bool         // header lines belong to a skipped block
	lines  int
	users  int
	err    error
}

// parseHeaders parses a _headers file. Malformed lines are skipped and
// reported in w; a forbidden header or a limit passed returns an *Error.
func parseHeaders(src []byte, w *warnings) ([]HeaderBlock, error) {
	if err := checkSize(headersName, src); err != nil {
		return nil, err
	}
	st := &headerState{w: w}
	lines(headersName, src, w, func(n int, line string) {
		if st.err != nil {
			return
		}
		t := strings.TrimSpace(line)
		switch {
		case t == "" || t[0] == '#':
		case line[0] == ' ' || line[0] == '\t':
			st.header(n, t)
		default:
			st.path(n, t)
		}
	})
	if st.err != nil {
		return nil, st.err
	}
	out := st.blocks[:0]
	for _, b := range st.blocks {
		if len(b.Set)+len(b.Remove)+len(b.Auth) > 0 {
			out = append(out, b)
		}
	}
	return out, nil
}

func (st *headerState) path(n int, t string) {
	st.cur, st.skip = nil, true
	_, p, err := parsePattern(t)
	if err != nil {
		st.w.add(headersName, n, "%v: block skipped", err)
		return
	}
	if len(st.blocks) == MaxHeaderBlocks {
		st.err = &Error{File: headersName, Line: n, Msg: fmt.Sprintf("more than %d path blocks", MaxHeaderBlocks)}
		return
	}
	st.blocks = append(st.blocks, HeaderBlock{Line: n, Path: p})
	st.cur, st.skip = &st.blocks[len(st.blocks)-1], false
}

func (st *headerState) header(n int, t string) {
	if st.cur == nil {
		if !st.skip {
			st.w.add(headersName, n, "header line before any path: skipped")
		}
		return
	}
	if st.lines++; st.lines > MaxHeaderLines {
		st.err = &Error{File: headersName, Line: n, Msg: fmt.Sprintf("more than %d header lines", MaxHeaderLines)}
		return
	}
	if rest, ok := strings.CutPrefix(t, "!"); ok {
		name := strings.TrimSpace(rest)
		if !validToken(name) {
			st.w.add(headersName, n, "%q: not a header name: skipped", name)
			return
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		if forbidden[name] {
			st.err = &Error{File: headersName, Line: n, Msg: fmt.Sprintf("%s is managed by the edge and cannot be removed", name)}
			return
		}
		st.cur.Remove = append(st.cur.Remove, name)
		return
	}
	name, value, ok := strings.Cut(t, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || !validToken(name) {
		st.w.add(headersName, n, "want \"Name: value\" or \"! Name\": skipped")
		return
	}
	name = textproto.CanonicalMIMEHeaderKey(name)
	switch {
	case forbidden[name]:
		st.err = &Error{File: headersName, Line: n, Msg: fmt.Sprintf("%s is managed by the edge and cannot be set", name)}
	case len(value) > MaxHeaderValue:
		st.err = &Error{File: headersName, Line: n, Msg: fmt.Sprintf("value of %d bytes, at most %d", len(value), MaxHeaderValue)}
	case !validValue(value):
		st.w.add(headersName, n, "%s: control characters in the value: skipped", name)
	case name == basicAuth:
		st.auth(n, value)
	default:
		st.cur.Set = append(st.cur.Set, Header{Name: name, Value: value})
	}
}

// auth parses "user:password [user2:password2 ...]".
func (st *headerState) auth(n int, value string) {
	for _, cred := range strings.Fields(value) {
		user, pass, ok := strings.Cut(cred, ":")
		if !ok || user == "" || pass == "" {
			st.w.add(headersName, n, "Basic-Auth: want user:password pairs separated by spaces: pair skipped")
			continue
		}
		if st.users++; st.users > MaxUsers {
			st.err = &Error{File: headersName, Line: n, Msg: fmt.Sprintf("more than %d Basic-Auth users", MaxUsers)}
			return
		}
		st.cur.Auth = append(st.cur.Auth, Credential{User: user, password: pass})
	}
}

// validToken reports an RFC 9110 token, the syntax of header names.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// validValue reports a value with no control characters but tab.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
