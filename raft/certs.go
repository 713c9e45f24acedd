package raft

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/atoll-hosting/atoll"

	bolt "go.etcd.io/bbolt"
)

// bucketCerts holds the TLS certificates of custom domains: domain -> Cert
// JSON. A domain belongs to at most one site (the domain index), so the
// domain alone is the key. Part of the on-disk and snapshot format.
var bucketCerts = []byte("certs")

// PutCert stores (or replaces) the certificate of a custom domain. The
// domain must belong to the site when the command applies, else
// ErrNotFound. The proposer checks that the PEM parses, the key matches and
// the certificate covers the domain; the FSM checks only what it can
// without parsing (sizes, names), so that applying stays cheap and
// deterministic. The same command twice has the effect of once.
type PutCert struct {
	Site     string    `json:"site"`
	Domain   string    `json:"domain"`
	CertPEM  string    `json:"cert"`
	KeyPEM   string    `json:"key"`
	NotAfter time.Time `json:"not_after"`
	Updated  time.Time `json:"updated"`
}

// DeleteCert removes a domain's certificate: ErrNotFound if the site has
// none for it. Deleting the site, or removing the domain from it, drops the
// certificate too.
type DeleteCert struct {
	Site   string `json:"site"`
	Domain string `json:"domain"`
}

func (PutCert) Type() CommandType    { return CmdPutCert }
func (DeleteCert) Type() CommandType { return CmdDeleteCert }

// Cert returns the certificate (with its key) of a custom domain, or an
// error wrapping ErrNotFound. The edge calls it during TLS handshakes.
func (f *FSM) Cert(domain string) (atoll.Cert, error) {
	var c atoll.Cert
	var found bool
	err := f.view(func(tx *bolt.Tx) error {
		var err error
		c, found, err = getCert(tx, domain)
		return err
	})
	if err != nil {
		return atoll.Cert{}, err
	}
	if !found {
		return atoll.Cert{}, fmt.Errorf("%w: certificate for %q", atoll.ErrNotFound, atoll.Truncate(domain, 80))
	}
	return c, nil
}

// Certs returns the certificates of a site's domains, ordered by domain,
// or an error wrapping ErrNotFound if there is no such site.
func (f *FSM) Certs(site string) ([]atoll.Cert, error) {
	out := []atoll.Cert{}
	var found bool
	err := f.view(func(tx *bolt.Tx) error {
		s, ok, err := getSite(tx, site)
		if err != nil || !ok {
			return err
		}
		found = true
		// A site has at most maxDomains domains: look each up rather than
		// scan every certificate of the cluster.
		domains := slices.Clone(s.Domains)
		slices.Sort(domains)
		for _, d := range domains {
			c, ok, err := getCert(tx, d)
			if err != nil {
				return err
			}
			if ok && c.Site == site {
				out = append(out, c)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: site %q", atoll.ErrNotFound, atoll.Truncate(site, 80))
	}
	return out, nil
}

func getCert(tx *bolt.Tx, domain string) (atoll.Cert, bool, error) {
	b := tx.Bucket(bucketCerts)
	if b == nil {
		return atoll.Cert{}, false, nil
	}
	v := b.Get([]byte(domain))
	if v == nil {
		return atoll.Cert{}, false, nil
	}
	var c atoll.Cert
	if err := json.Unmarshal(v, &c); err != nil {
		return atoll.Cert{}, false, fmt.Errorf("decode certificate %q: %w", domain, err)
	}
	return c, true, nil
}

// putCert validates, then stores.
func (a *applier) putCert(c PutCert) error {
	if !atoll.ValidDomain(c.Domain) {
		return fmt.Errorf("%w: domain %q: want a lowercase host name without port", atoll.ErrInvalid, atoll.Truncate(c.Domain, 80))
	}
	if c.CertPEM == "" || c.KeyPEM == "" {
		return fmt.Errorf("%w: certificate for %q: empty certificate or key", atoll.ErrInvalid, c.Domain)
	}
	if n := len(c.CertPEM) + len(c.KeyPEM); n > atoll.MaxCertBytes {
		return fmt.Errorf("%w: certificate for %q: %d bytes of PEM, at most %d", atoll.ErrInvalid, c.Domain, n, atoll.MaxCertBytes)
	}
	if err := a.checkDomainOf(c.Site, c.Domain); err != nil {
		return err
	}
	return a.put(bucketCerts, c.Domain, atoll.Cert{Domain: c.Domain, Site: c.Site, CertPEM: c.CertPEM, KeyPEM: c.KeyPEM,
		NotAfter: c.NotAfter, Updated: c.Updated})
}

// deleteCert removes the certificate of one of the site's domains.
func (a *applier) deleteCert(c DeleteCert) error {
	old, ok, err := getCert(a.tx, c.Domain)
	if err != nil {
		return err
	}
	if !ok || old.Site != c.Site {
		return fmt.Errorf("%w: site %q has no certificate for %q", atoll.ErrNotFound, atoll.Truncate(c.Site, 80), atoll.Truncate(c.Domain, 80))
	}
	return a.dropCert(c.Domain)
}

// checkDomainOf rejects a domain that is not one of site's.
func (a *applier) checkDomainOf(site, domain string) error {
	if _, ok, err := getSite(a.tx, site); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: site %q", atoll.ErrNotFound, atoll.Truncate(site, 80))
	}
	if owner := a.bucket(bucketDomains).Get([]byte(domain)); string(owner) != site {
		return fmt.Errorf("%w: %q is not a domain of site %q", atoll.ErrNotFound, domain, site)
	}
	return nil
}

// dropCert deletes a domain's certificate if there is one. DeleteSite and
// UpdateSite call it for every domain a site gives up.
func (a *applier) dropCert(domain string) error {
	return a.bucket(bucketCerts).Delete([]byte(domain))
}
