package builder

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll/raft"
)

// MaxRetain bounds a site's retention setting.
const MaxRetain = 1000

const siteNameRule = "a site name is a DNS label: 1-63 lowercase letters, digits and hyphens, " +
	"not starting or ending with a hyphen and without \"--\" (reserved for preview hosts)"

func (a *API) createSite(w http.ResponseWriter, r *http.Request) {
	var req CreateSiteRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if !raft.ValidSiteName(req.Name) {
		a.fail(w, r, errorf(http.StatusBadRequest, "invalid site name %q: %s", req.Name, siteNameRule))
		return
	}
	domains, err := a.cleanDomains(req.Domains)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := checkRetain(req.Retain); err != nil {
		a.fail(w, r, err)
		return
	}
	cmd := raft.CreateSite{Name: req.Name, Domains: domains, Retain: req.Retain, Created: time.Now().UTC()}
	if err := a.meta.Apply(r.Context(), cmd); err != nil {
		switch {
		case errors.Is(err, raft.ErrExists):
			err = errorf(http.StatusConflict, "site %q already exists", req.Name)
		case errors.Is(err, raft.ErrConflict):
			err = errorf(http.StatusConflict, "a domain is already used by another site: %v", err)
		}
		a.fail(w, r, err)
		return
	}
	// Answer from the command rather than a read: this node may not have
	// applied it yet when the write went through another leader.
	site := raft.Site{Name: cmd.Name, Domains: domains, Created: cmd.Created, Retain: cmd.Retain}
	if site.Retain == 0 {
		site.Retain = raft.DefaultRetain
	}
	a.log.Info("site created", "site", site.Name, "domains", len(domains))
	WriteJSON(w, http.StatusCreated, site)
}

func (a *API) listSites(w http.ResponseWriter, r *http.Request) {
	sites, err := a.meta.Sites()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if sites == nil {
		sites = []raft.Site{}
	}
	for i := range sites {
		sites[i] = withDomains(sites[i])
	}
	WriteJSON(w, http.StatusOK, SiteList{Sites: sites})
}

func (a *API) getSite(w http.ResponseWriter, r *http.Request) {
	site, err := a.site(r.PathValue("site"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, withDomains(site))
}

func (a *API) updateSite(w http.ResponseWriter, r *http.Request) {
	site, err := a.site(r.PathValue("site"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var req UpdateSiteRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	cmd := raft.UpdateSite{Name: site.Name, Domains: site.Domains}
	if req.Domains != nil {
		if cmd.Domains, err = a.cleanDomains(*req.Domains); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	if req.Retain != nil {
		if *req.Retain == 0 {
			a.fail(w, r, errorf(http.StatusBadRequest, "retain must be between 1 and %d", MaxRetain))
			return
		}
		if err := checkRetain(*req.Retain); err != nil {
			a.fail(w, r, err)
			return
		}
		cmd.Retain = *req.Retain
	}
	if err := a.meta.Apply(r.Context(), cmd); err != nil {
		if errors.Is(err, raft.ErrConflict) {
			err = errorf(http.StatusConflict, "a domain is already used by another site: %v", err)
		}
		a.fail(w, r, err)
		return
	}
	site.Domains = cmd.Domains
	if cmd.Retain > 0 {
		site.Retain = cmd.Retain
	}
	WriteJSON(w, http.StatusOK, withDomains(site))
}

func (a *API) deleteSite(w http.ResponseWriter, r *http.Request) {
	site, err := a.site(r.PathValue("site"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.meta.Apply(r.Context(), raft.DeleteSite{Name: site.Name}); err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.Info("site deleted", "site", site.Name)
	w.WriteHeader(http.StatusNoContent)
}

// site reads a site, turning "not found" into a 404 that names it.
func (a *API) site(name string) (raft.Site, error) {
	site, err := a.meta.Site(name)
	if errors.Is(err, raft.ErrNotFound) {
		return raft.Site{}, errorf(http.StatusNotFound, "site %q does not exist", name)
	}
	return site, err
}

// cleanDomains lowercases, checks and de-duplicates custom domains, keeping
// their order. A trailing dot (the DNS root) is dropped.
func (a *API) cleanDomains(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, d := range in {
		d = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
		if !raft.ValidDomain(d) {
			return nil, errorf(http.StatusBadRequest,
				"invalid domain %q: use a host name such as www.example.com, without scheme, port or path", d)
		}
		if a.cfg.Domain != "" && strings.HasSuffix(d, "."+a.cfg.Domain) {
			return nil, errorf(http.StatusBadRequest,
				"domain %q is under the cluster domain %q, where sites already answer as <site>.%s", d, a.cfg.Domain, a.cfg.Domain)
		}
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out, nil
}

func checkRetain(n int) error {
	if n < 0 || n > MaxRetain {
		return errorf(http.StatusBadRequest, "retain must be between 1 and %d (0 or absent means %d)", MaxRetain, raft.DefaultRetain)
	}
	return nil
}

// withDomains makes an empty domain list encode as [] rather than null.
func withDomains(s raft.Site) raft.Site {
	if s.Domains == nil {
		s.Domains = []string{}
	}
	return s
}
