package atoll

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Retention and domain bounds of a site.
const (
	DefaultRetain = 10   // deploys a site keeps for rollback unless it says otherwise
	MaxRetain     = 1000 // the most deploys a site may keep
	MaxDomains    = 100  // custom domains per site
	MaxMessageLen = 500  // bytes of a deploy's message
)

// CheckMessage accepts a deploy message: at most MaxMessageLen bytes of
// valid UTF-8 without control characters (one line).
func CheckMessage(s string) error {
	if len(s) > MaxMessageLen {
		return fmt.Errorf("%w: message of %d bytes, at most %d", ErrInvalid, len(s), MaxMessageLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: message is not valid UTF-8", ErrInvalid)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: message has a control character %U; use one line of text", ErrInvalid, r)
		}
	}
	return nil
}

// Site is a hosted website.
type Site struct {
	Name      string    `json:"name"`
	Domains   []string  `json:"domains"`             // custom domains, lowercase, no port
	Published string    `json:"published,omitempty"` // id of the live deploy, "" if none
	Created   time.Time `json:"created"`
	Retain    int       `json:"retain"` // deploys kept for rollback
	// Per-site limits set by an admin; 0 (and a record written before
	// they existed) means the cluster's default (EffectiveLimits).
	MaxBytes     int64 `json:"max_bytes,omitempty"`     // identity bytes of one deploy
	MaxUploading int   `json:"max_uploading,omitempty"` // deploys in state uploading at once
	MaxFiles     int   `json:"max_files,omitempty"`     // files of one deploy
	// HTTPSOnly answers plain-HTTP requests with 308 to HTTPS; HSTS adds
	// Strict-Transport-Security to HTTPS answers. Both need feature level
	// LevelFeatureLevels: an older node would ignore them.
	HTTPSOnly bool `json:"https_only,omitempty"`
	HSTS      bool `json:"hsts,omitempty"`
	// Locked pins the live deploy: publishes (and rollbacks) are refused
	// until it is unlocked (raft.LockSite, LevelFeatureLevels).
	Locked bool `json:"locked,omitempty"`
}

// SiteLimits are the limits a site's deploys are held to: the cluster's
// defaults (flags of `atoll server`), or the site's own where an admin set
// them.
type SiteLimits struct {
	MaxBytes     int64 `json:"max_bytes"`     // total identity bytes of one deploy (413 beyond)
	MaxUploading int   `json:"max_uploading"` // deploys uploading at once (429 beyond)
	MaxFiles     int   `json:"max_files"`     // files of one deploy (413 beyond)
}

// Limits returns the limits s is held to: its own where set, else def's.
func (s Site) Limits(def SiteLimits) SiteLimits {
	if s.MaxBytes > 0 {
		def.MaxBytes = s.MaxBytes
	}
	if s.MaxUploading > 0 {
		def.MaxUploading = s.MaxUploading
	}
	if s.MaxFiles > 0 {
		def.MaxFiles = s.MaxFiles
	}
	return def
}

// CheckSiteLimits accepts per-site limits as an update gives them: nil
// keeps the site's, 0 means the cluster default, negative is refused.
func CheckSiteLimits(maxBytes *int64, maxUploading, maxFiles *int) error {
	if maxBytes != nil && *maxBytes < 0 || maxUploading != nil && *maxUploading < 0 || maxFiles != nil && *maxFiles < 0 {
		return fmt.Errorf("%w: site limits must not be negative (0 means the cluster default)", ErrInvalid)
	}
	return nil
}

// SetLimits applies limits CheckSiteLimits accepted: each one not nil
// replaces the site's.
func (s *Site) SetLimits(maxBytes *int64, maxUploading, maxFiles *int) {
	if maxBytes != nil {
		s.MaxBytes = *maxBytes
	}
	if maxUploading != nil {
		s.MaxUploading = *maxUploading
	}
	if maxFiles != nil {
		s.MaxFiles = *maxFiles
	}
}

// SetHTTPS applies the HTTPS settings of an update: each one not nil
// replaces the site's.
func (s *Site) SetHTTPS(httpsOnly, hsts *bool) {
	if httpsOnly != nil {
		s.HTTPSOnly = *httpsOnly
	}
	if hsts != nil {
		s.HSTS = *hsts
	}
}

// DeployState is where a deploy is in its life.
type DeployState string

// Deploy states: uploading -> ready -> published -> superseded (and back to
// published on rollback), or failed.
const (
	StateUploading  DeployState = "uploading"
	StateReady      DeployState = "ready"
	StatePublished  DeployState = "published"
	StateSuperseded DeployState = "superseded"
	StateFailed     DeployState = "failed"
)

// Deploy is one immutable version of a site.
type Deploy struct {
	ID          string      `json:"id"`
	Site        string      `json:"site"`
	State       DeployState `json:"state"`
	Created     time.Time   `json:"created"`
	PublishedAt time.Time   `json:"published_at,omitzero"` // last time it went live
	Files       int         `json:"files"`                 // manifest size declared at creation
	Received    int         `json:"received"`              // manifest entries stored so far
	Bytes       int64       `json:"bytes"`                 // total identity bytes, known once ready
	Reason      string      `json:"reason,omitempty"`      // why it failed, from FailDeploy
	// Rules is the SHA-256 (lowercase hex) of the deploy's compiled
	// _redirects and _headers (package siterules), recorded by MarkReady
	// at LevelFeatureLevels; "" when the deploy has neither file or was
	// made below that level (the files are then served as plain files).
	Rules string `json:"rules,omitempty"`
	// Message says what the deploy is (atoll deploy --message), set by
	// CreateDeploy at LevelFeatureLevels; see CheckMessage.
	Message string `json:"message,omitempty"`
	// Base is the deploy whose manifest this one's started as a copy of
	// (raft.CreateDeploy.Base, at LevelDeployBase), so that only the
	// difference travelled through Raft; "" when the whole manifest was
	// sent. The deploy's manifest is complete either way.
	Base string `json:"base,omitempty"`
}

// File is one manifest entry: a normalized path (see CleanPath) and the
// SHA-256 of its content in lowercase hex. Size, content type and encodings
// are properties of the content and the path's extension: the blob store
// and the edge derive them, so the manifest stays 32 bytes of hash per path.
type File struct {
	Path string `json:"path"`
	Hash string `json:"hash"`
}

// CheckRetain accepts a retention setting: 1 to MaxRetain, or 0 for
// DefaultRetain.
func CheckRetain(n int) error {
	if n < 0 || n > MaxRetain {
		return fmt.Errorf("%w retain %d: must be between 1 and %d (0 or absent means %d)", ErrInvalid, n, MaxRetain, DefaultRetain)
	}
	return nil
}

// CheckDomains validates a site's custom domains (see ValidDomain; at most
// MaxDomains) and drops repeats, keeping the first occurrence's position.
// It does not rewrite a domain: NormalizeDomain does, before the check, for
// what a user typed.
func CheckDomains(domains []string) ([]string, error) {
	if len(domains) > MaxDomains {
		return nil, fmt.Errorf("%w: %d domains, at most %d", ErrInvalid, len(domains), MaxDomains)
	}
	out := make([]string, 0, len(domains))
	for _, d := range domains {
		if !ValidDomain(d) {
			return nil, fmt.Errorf("%w domain %q: use a host name such as www.example.com, without scheme, port or path",
				ErrInvalid, Truncate(d, 80))
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out, nil
}

// NormalizeDomain turns a domain as a user may type it into the form
// CheckDomains accepts: trimmed, lowercase, without the DNS root's trailing
// dot.
func NormalizeDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
}
