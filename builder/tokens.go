package builder

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/raft"
)

// tokenIDLen is the length of a token id, drawn like deploy ids.
const tokenIDLen = 10

// createToken serves POST /v1/tokens (admin only): it draws an id and a
// secret, records only the secret's SHA-256, and answers the secret once.
func (a *API) createToken(w http.ResponseWriter, r *http.Request) {
	var req atoll.CreateTokenRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if req.Site == "" {
		a.fail(w, r, errorf(http.StatusBadRequest, "\"site\" is required: a deploy token is scoped to one site"))
		return
	}
	if err := atoll.CheckTokenName(req.Name); err != nil {
		a.fail(w, r, err)
		return
	}
	if _, err := a.site(req.Site); err != nil {
		a.fail(w, r, err)
		return
	}
	secret := newSecret()
	sum := sha256.Sum256([]byte(secret))
	cmd := raft.CreateToken{Site: req.Site, Name: req.Name, Hash: hex.EncodeToString(sum[:]), Created: time.Now().UTC()}
	var err error
	for range 3 {
		// An id in use is ErrExists (the FSM only takes the very same
		// command again as a retry): draw another.
		cmd.ID = randomID(tokenIDLen)
		if err = a.meta.Apply(r.Context(), cmd); !errors.Is(err, atoll.ErrExists) {
			break
		}
	}
	if err != nil {
		if errors.Is(err, atoll.ErrNotFound) { // deleted since the check above
			err = errorf(http.StatusNotFound, "site %q does not exist", req.Site)
		}
		a.fail(w, r, err)
		return
	}
	a.log.Info("token created", "token_id", cmd.ID, "site", cmd.Site) // never the secret
	WriteJSON(w, http.StatusCreated, atoll.CreatedToken{
		TokenInfo: atoll.TokenInfo{ID: cmd.ID, Site: cmd.Site, Name: cmd.Name, Created: cmd.Created},
		Token:     secret,
	})
}

// listTokens serves GET /v1/tokens (admin only): ids, sites, names and
// creation times; secrets cannot be read back, and hashes are not shown.
func (a *API) listTokens(w http.ResponseWriter, r *http.Request) {
	tokens, err := a.meta.Tokens()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	list := atoll.TokenList{Tokens: make([]atoll.TokenInfo, 0, len(tokens))}
	for _, t := range tokens {
		list.Tokens = append(list.Tokens, atoll.TokenInfo{ID: t.ID, Site: t.Site, Name: t.Name, Created: t.Created})
	}
	WriteJSON(w, http.StatusOK, list)
}

// revokeToken serves DELETE /v1/tokens/{id} (admin only). Every node
// refuses the token once it has applied the revocation.
func (a *API) revokeToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var err error = errorf(http.StatusNotFound, "token %q does not exist", id)
	if atoll.ValidTokenID(id) {
		err = a.meta.Apply(r.Context(), raft.RevokeToken{ID: id})
		if errors.Is(err, atoll.ErrNotFound) {
			err = errorf(http.StatusNotFound, "token %q does not exist (already revoked?)", id)
		}
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("token revoked", "token_id", id)
	w.WriteHeader(http.StatusNoContent)
}

// newSecret returns SiteTokenPrefix and 32 random bytes in hex: 256 bits,
// beyond guessing, so one unsalted SHA-256 is a safe way to store it.
func newSecret() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand documents a crash instead)
	return atoll.SiteTokenPrefix + hex.EncodeToString(b[:])
}

// rotateAdminToken serves PUT /v1/admin-token (admin only): it records the
// SHA-256 of the new admin token (atoll.AdminTokenRequest). Every node
// takes the new token and refuses the old one once it has applied the
// command; the secret is never logged nor answered back.
func (a *API) rotateAdminToken(w http.ResponseWriter, r *http.Request) {
	var req atoll.AdminTokenRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := atoll.CheckAdminToken(req.Token); err != nil {
		a.fail(w, r, err)
		return
	}
	sum := sha256.Sum256([]byte(req.Token))
	if err := a.meta.Apply(r.Context(), raft.SetAdminToken{Hash: hex.EncodeToString(sum[:])}); err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("admin token rotated")
	if a.cfg.AdminTokenRotated != nil {
		if err := a.cfg.AdminTokenRotated(req.Token); err != nil {
			a.log.Error("admin token rotated, but this node's token file was not updated", "err", err)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
