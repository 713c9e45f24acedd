package builder

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/raft"
)

// CertMeta is what the certificate routes read besides Meta: the
// replicated certificates of custom domains. It is separate from Meta so
// that a Meta without certificates (a test double) keeps compiling; the
// routes answer 501 when the API's Meta does not implement it. node's does.
type CertMeta interface {
	// Certs returns a site's certificates by domain, or an error wrapping
	// atoll.ErrNotFound if there is no such site.
	Certs(site string) ([]atoll.Cert, error)
}

// putCert serves PUT /v1/sites/{site}/certs/{domain} (admin only). It
// refuses (400) a body whose certificate or key does not parse, a key that
// is not the certificate's, a certificate that does not cover the domain or
// has expired; (404) a domain that is not one of the site's. Every edge
// serves the certificate for that domain once it has applied the write.
func (a *API) putCert(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.meta.(CertMeta); !ok {
		a.fail(w, r, errCertsUnsupported)
		return
	}
	site, domain := r.PathValue("site"), cleanDomain(r.PathValue("domain"))
	var req atoll.PutCertRequest
	if err := a.decodeCert(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.checkSiteDomain(site, domain); err != nil {
		a.fail(w, r, err)
		return
	}
	leaf, err := checkCert(req, domain, time.Now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	key, err := a.sealCertKey(domain, req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	cmd := raft.PutCert{Site: site, Domain: domain, CertPEM: req.Cert, KeyPEM: key,
		NotAfter: leaf.NotAfter.UTC(), Updated: time.Now().UTC()}
	if err := a.meta.Apply(r.Context(), cmd); err != nil {
		if errors.Is(err, atoll.ErrNotFound) { // the domain left the site meanwhile
			err = errorf(http.StatusNotFound, "%q is not a domain of site %q", domain, site)
		}
		a.fail(w, r, err)
		return
	}
	a.log.Info("certificate stored", "site", site, "domain", domain, "not_after", cmd.NotAfter)
	WriteJSON(w, http.StatusOK, certInfo(atoll.Cert{Domain: domain, Site: site, CertPEM: req.Cert,
		NotAfter: cmd.NotAfter, Updated: cmd.Updated}))
}

// listCerts serves GET /v1/sites/{site}/certs (admin only).
func (a *API) listCerts(w http.ResponseWriter, r *http.Request) {
	cm, ok := a.meta.(CertMeta)
	if !ok {
		a.fail(w, r, errCertsUnsupported)
		return
	}
	site := r.PathValue("site")
	certs, err := cm.Certs(site)
	if errors.Is(err, atoll.ErrNotFound) {
		err = errorf(http.StatusNotFound, "site %q does not exist", site)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	list := atoll.CertList{Certs: make([]atoll.CertInfo, 0, len(certs))}
	uploaded := map[string]bool{}
	for _, c := range certs {
		info := certInfo(c)
		info.Source, info.State = "uploaded", "valid"
		if time.Now().After(info.NotAfter) {
			info.State = "expired"
		}
		uploaded[c.Domain] = true
		list.Certs = append(list.Certs, info)
	}
	if a.cfg.IssuedCerts != nil {
		issued, err := a.cfg.IssuedCerts(site)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		for _, info := range issued {
			if !uploaded[info.Domain] { // an uploaded certificate wins
				list.Certs = append(list.Certs, info)
			}
		}
		slices.SortFunc(list.Certs, func(x, y atoll.CertInfo) int { return strings.Compare(x.Domain, y.Domain) })
	}
	WriteJSON(w, http.StatusOK, list)
}

// deleteCert serves DELETE /v1/sites/{site}/certs/{domain} (admin only).
func (a *API) deleteCert(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.meta.(CertMeta); !ok {
		a.fail(w, r, errCertsUnsupported)
		return
	}
	site, domain := r.PathValue("site"), cleanDomain(r.PathValue("domain"))
	err := a.meta.Apply(r.Context(), raft.DeleteCert{Site: site, Domain: domain})
	if errors.Is(err, atoll.ErrNotFound) {
		err = errorf(http.StatusNotFound, "site %q has no certificate for %q", site, domain)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("certificate deleted", "site", site, "domain", domain)
	w.WriteHeader(http.StatusNoContent)
}

// sealCertKey returns the private key as the replicated state records it:
// sealed by Config.SealCertKey when set, and still within
// atoll.MaxCertBytes with the chain.
func (a *API) sealCertKey(domain string, req atoll.PutCertRequest) (string, error) {
	if a.cfg.SealCertKey == nil {
		return req.Key, nil
	}
	key, err := a.cfg.SealCertKey(domain, req.Key)
	if err != nil {
		return "", fmt.Errorf("seal the private key of %q: %w", domain, err)
	}
	if n := len(req.Cert) + len(key); n > atoll.MaxCertBytes {
		return "", errorf(http.StatusRequestEntityTooLarge, "certificate and sealed key are %d bytes, at most %d: send a shorter chain", n, atoll.MaxCertBytes)
	}
	return key, nil
}

var errCertsUnsupported = errorf(http.StatusNotImplemented, "this server does not store certificates")

func cleanDomain(d string) string { return strings.TrimSuffix(strings.ToLower(d), ".") }

// decodeCert reads a PutCertRequest of at most a little more than
// atoll.MaxCertBytes.
func (a *API) decodeCert(w http.ResponseWriter, r *http.Request, req *atoll.PutCertRequest) error {
	const limit = 2*atoll.MaxCertBytes + 1024 // JSON escaping of PEM newlines
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		if errors.Is(err, io.EOF) {
			return errorf(http.StatusBadRequest, `request body is empty: send {"cert": "<PEM chain>", "key": "<PEM key>"}`)
		}
		return jsonError(err)
	}
	if req.Cert == "" || req.Key == "" {
		return errorf(http.StatusBadRequest, `"cert" (PEM chain, leaf first) and "key" (PEM private key) are both required`)
	}
	if n := len(req.Cert) + len(req.Key); n > atoll.MaxCertBytes {
		return errorf(http.StatusRequestEntityTooLarge, "certificate and key are %d bytes of PEM, at most %d", n, atoll.MaxCertBytes)
	}
	return nil
}

// checkSiteDomain answers 404 unless domain is one of site's custom
// domains.
func (a *API) checkSiteDomain(site, domain string) error {
	s, err := a.site(site)
	if err != nil {
		return err
	}
	if !slices.Contains(s.Domains, domain) {
		return errorf(http.StatusNotFound, "%q is not a domain of site %q: add it to the site first (PATCH /v1/sites/%s)", domain, site, site)
	}
	return nil
}

// checkCert parses a certificate and key and returns the leaf if the key
// is the leaf's, the leaf covers domain and it has not expired at now.
func checkCert(req atoll.PutCertRequest, domain string, now time.Time) (*x509.Certificate, error) {
	pair, err := tls.X509KeyPair([]byte(req.Cert), []byte(req.Key))
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "certificate and key: %v", err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, errorf(http.StatusBadRequest, "certificate: %v", err)
		}
	}
	if err := leaf.VerifyHostname(domain); err != nil {
		return nil, errorf(http.StatusBadRequest, "the certificate does not cover %q (it names %s)", domain, strings.Join(leafNames(leaf), ", "))
	}
	if now.After(leaf.NotAfter) {
		return nil, errorf(http.StatusBadRequest, "the certificate expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return leaf, nil
}

func leafNames(c *x509.Certificate) []string {
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return []string{"no names"}
	}
	return names
}

// certInfo describes a stored certificate without its key.
func certInfo(c atoll.Cert) atoll.CertInfo {
	info := atoll.CertInfo{Domain: c.Domain, Site: c.Site, NotAfter: c.NotAfter, Updated: c.Updated}
	if block, _ := pem.Decode([]byte(c.CertPEM)); block != nil {
		if leaf, err := x509.ParseCertificate(block.Bytes); err == nil {
			info.Names = leaf.DNSNames
			info.Issuer = leaf.Issuer.String()
		}
	}
	return info
}
