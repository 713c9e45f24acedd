package atoll

import (
	"fmt"
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
