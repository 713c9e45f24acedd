package serve

import (
	"bytes"
	"net/url"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/atoll-hosting/atoll"
)

// A site's HTTPS settings (atoll.Site.HTTPSOnly, HSTS), applied to every
// host that resolves to one of its deploys (site host, custom domains,
// previews):
//
//   - HTTPS-only: a plain-HTTP request is answered 308 Permanent Redirect
//     to https://<host>[:<port>]<path>?<query>, the port being that of the
//     edge's HTTPS listener (Config.HTTPSPort, left out when 443); the
//     method and body are kept (308, not 301). ACME HTTP-01 challenges
//     (/.well-known/acme-challenge/...) are never redirected: a CA asks for
//     them over plain HTTP. An edge without an HTTPS listener has nowhere to
//     send visitors, so it serves such a site over plain HTTP as well (the
//     API refuses to turn https_only on through a node without one).
//   - HSTS: every answer over TLS for a resolved deploy carries
//     "Strict-Transport-Security: max-age=31536000" (HSTSValue: one year,
//     what browsers' preload lists ask for, without includeSubDomains,
//     which would bind names under a custom domain that Atoll may not
//     serve). Never over plain HTTP (RFC 6797, section 7.2).
//
// A host that resolves to nothing servable (unknown, nothing published)
// answers 404 as before, on either scheme.

// HSTSValue is the Strict-Transport-Security of sites with HSTS on.
const HSTSValue = "max-age=31536000"

// acmeChallengePath prefixes the paths a CA fetches for ACME HTTP-01.
const acmeChallengePath = "/.well-known/acme-challenge/"

// httpsPolicy is a site's HTTPS settings, as the edge applies them.
type httpsPolicy uint8

const (
	policyHTTPSOnly httpsPolicy = 1 << iota
	policyHSTS
)

func policyOf(s atoll.Site) httpsPolicy {
	var p httpsPolicy
	if s.HTTPSOnly {
		p |= policyHTTPSOnly
	}
	if s.HSTS {
		p |= policyHSTS
	}
	return p
}

var (
	strHSTSKey  = []byte(fasthttp.HeaderStrictTransportSecurity)
	strHSTS     = []byte(HSTSValue)
	strLocation = []byte(fasthttp.HeaderLocation)
)

// httpsPortSuffix returns what follows the host in a redirect to the HTTPS
// listener on port: "" for 443 or no listener (0), else ":<port>".
func httpsPortSuffix(port int) string {
	if port == 0 || port == 443 {
		return ""
	}
	return ":" + strconv.Itoa(port)
}

// toHTTPS answers a plain-HTTP request for an HTTPS-only site with a 308
// to the same URL over HTTPS, and reports whether it did.
func (h *Handler) toHTTPS(ctx *fasthttp.RequestCtx, dv *deployView) bool {
	if dv.https&policyHTTPSOnly == 0 || !h.httpsOn || ctx.IsTLS() ||
		bytes.HasPrefix(ctx.Path(), []byte(acmeChallengePath)) {
		return false
	}
	host, ok := hostName(ctx.Host())
	if !ok {
		return false // it resolved, so this does not happen
	}
	p, ok := requestPath(ctx.Path())
	if !ok {
		p = "/"
	}
	loc := make([]byte, 0, 16+len(host)+len(h.httpsPort)+len(p))
	loc = append(loc, "https://"...)
	loc = append(loc, host...)
	loc = append(loc, h.httpsPort...)
	loc = append(loc, (&url.URL{Path: p}).EscapedPath()...)
	if q := ctx.URI().QueryString(); len(q) > 0 && safeQuery(q) {
		loc = append(loc, '?')
		loc = append(loc, q...)
	}
	resp := &ctx.Response.Header
	resp.SetCanonical(strLocation, loc)
	resp.SetCanonical(strCacheControl, h.cacheCtlB)
	ctx.SetStatusCode(fasthttp.StatusPermanentRedirect)
	return true
}

// addHSTS adds Strict-Transport-Security to an answer over TLS for a site
// with HSTS on. It runs once the answer is complete, since error answers
// reset the header.
func (h *Handler) addHSTS(ctx *fasthttp.RequestCtx, dv *deployView) {
	if dv.https&policyHSTS != 0 && ctx.IsTLS() {
		ctx.Response.Header.SetCanonical(strHSTSKey, strHSTS)
	}
}
