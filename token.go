package atoll

import (
	"fmt"
	"strings"
	"time"
	"unicode"
)

// SiteTokenPrefix starts every deploy token, so that one is recognizable in
// a config file or a secret scanner, and is never mistaken for the admin
// token ("atl_" alone).
const SiteTokenPrefix = "atl_site_"

// MaxTokenNameLen bounds a token's optional name, in bytes.
const MaxTokenNameLen = 200

// Token is a site-scoped API token as the replicated state records it. The
// secret itself is never stored: only its SHA-256, which is how a bearer
// token is looked up. The admin token is not a Token.
type Token struct {
	ID      string    `json:"id"`             // ValidTokenID
	Site    string    `json:"site"`           // the one site the token may act on
	Name    string    `json:"name,omitempty"` // what it is for, e.g. "ci"
	Hash    string    `json:"hash"`           // lowercase hex SHA-256 of the secret
	Created time.Time `json:"created"`
}

// CheckTokenName allows up to MaxTokenNameLen bytes without control
// characters.
func CheckTokenName(name string) error {
	if len(name) > MaxTokenNameLen {
		return fmt.Errorf("%w token name of %d bytes: at most %d", ErrInvalid, len(name), MaxTokenNameLen)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w token name %q: it has a control character", ErrInvalid, Truncate(name, 80))
		}
	}
	return nil
}

// Bounds of an admin token chosen by an operator (PUT /v1/admin-token).
// The lower bound keeps a guessable secret out; the generated ones
// ("atl_" and 48 hex digits) are 52 bytes.
const (
	MinAdminTokenLen = 24
	MaxAdminTokenLen = 256
)

// CheckAdminToken allows MinAdminTokenLen to MaxAdminTokenLen bytes of
// printable ASCII without spaces, which a bearer header carries as is; a
// deploy token's prefix is refused, so that the two are never confused.
func CheckAdminToken(token string) error {
	if n := len(token); n < MinAdminTokenLen || n > MaxAdminTokenLen {
		return fmt.Errorf("%w admin token of %d bytes: want %d to %d", ErrInvalid, n, MinAdminTokenLen, MaxAdminTokenLen)
	}
	for _, c := range []byte(token) {
		if c <= ' ' || c > '~' {
			return fmt.Errorf("%w admin token: only printable ASCII without spaces", ErrInvalid)
		}
	}
	if strings.HasPrefix(token, SiteTokenPrefix) {
		return fmt.Errorf("%w admin token: it starts like a deploy token (%s)", ErrInvalid, SiteTokenPrefix)
	}
	return nil
}
