package peer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/raft"
)

// ErrUnreachable wraps the error of a call that got no answer: the peer
// could not be dialled, the connection broke before the answer's header,
// or the ctx ended first. Whether the peer acted on the request is
// unknown.
var ErrUnreachable = errors.New("peer unreachable")

// Error is a peer's non-2xx answer.
type Error struct {
	Method     string
	URL        string
	StatusCode int
	Message    string // the answer's "error" message, else the start of its body
	Kind       string // the answer's "kind" (KindOf), "" when it has none
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Is matches the sentinel the answer's kind names or, without a kind, the
// sentinels of its status (see the package doc).
func (e *Error) Is(target error) bool {
	if s, ok := kinds[e.Kind]; ok {
		return target == s
	}
	switch e.StatusCode {
	case http.StatusNotFound:
		return target == atoll.ErrNotFound || target == blobstore.ErrNotFound
	case http.StatusConflict:
		return target == atoll.ErrConflict
	case http.StatusBadRequest:
		return target == atoll.ErrInvalid
	case http.StatusInsufficientStorage:
		return target == blobstore.ErrNoSpace
	}
	return false
}

// kinds names on the wire the sentinels a forwarded write can be rejected
// with, so that the rejection keeps its meaning (404, 409, 400, 429, 503)
// on the forwarding node.
var kinds = map[string]error{
	"not_found":  atoll.ErrNotFound,
	"exists":     atoll.ErrExists,
	"conflict":   atoll.ErrConflict,
	"invalid":    atoll.ErrInvalid,
	"limit":      atoll.ErrLimit,
	"not_leader": raft.ErrNotLeader,
	"unknown":    raft.ErrUnknownCommand,
}

// KindOf returns the name on the wire of the sentinel err wraps, for the
// "kind" of an ErrorBody: "not_found" (atoll.ErrNotFound), "exists",
// "conflict", "invalid", "limit", "not_leader" (raft.ErrNotLeader) or "unknown"
// (raft.ErrUnknownCommand); "" for any other error.
func KindOf(err error) string {
	for k, s := range kinds {
		if errors.Is(err, s) {
			return k
		}
	}
	return ""
}

// WriteError answers err with status: an ErrorBody of its message and
// kind.
func WriteError(w http.ResponseWriter, status int, err error) {
	builder.WriteJSON(w, status, ErrorBody{Error: err.Error(), Kind: KindOf(err)})
}

// readError turns a non-2xx answer into an *Error; it reads up to 64 KiB of
// the body and leaves closing it to the caller.
func readError(req *http.Request, resp *http.Response) *Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Method: req.Method, URL: req.URL.String(), StatusCode: resp.StatusCode}
	var body ErrorBody
	if json.Unmarshal(b, &body) == nil && body.Error != "" {
		e.Message, e.Kind = body.Error, body.Kind
	} else {
		e.Message = strings.ToValidUTF8(string(bytes.TrimSpace(b[:min(len(b), 200)])), "?")
	}
	return e
}
