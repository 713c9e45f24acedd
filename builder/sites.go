package builder

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/raft"
)

const siteNameRule = "a site name is a DNS label: 1-63 lowercase letters, digits and hyphens, " +
	"not starting or ending with a hyphen and without \"--\" (reserved for preview hosts)"

func (a *API) createSite(w http.ResponseWriter, r *http.Request) {
	var req atoll.CreateSiteRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if !atoll.ValidSiteName(req.Name) {
		a.fail(w, r, errorf(http.StatusBadRequest, "invalid site name %q: %s", req.Name, siteNameRule))
		return
	}
	domains, err := a.checkDomains(req.Domains)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if err := atoll.CheckRetain(req.Retain); err != nil {
		a.fail(w, r, err)
		return
	}
	cmd := raft.CreateSite{Name: req.Name, Domains: domains, Retain: req.Retain, Created: time.Now().UTC()}
	if err := a.meta.Apply(r.Context(), cmd); err != nil {
		switch {
		case errors.Is(err, atoll.ErrExists):
			err = errorf(http.StatusConflict, "site %q already exists", req.Name)
		case errors.Is(err, atoll.ErrConflict):
			err = errorf(http.StatusConflict, "a domain is already used by another site: %v", err)
		}
		a.fail(w, r, err)
		return
	}
	// Answer from the command rather than a read: this node may not have
	// applied it yet when the write went through another leader.
	site := atoll.Site{Name: cmd.Name, Domains: domains, Created: cmd.Created, Retain: cmd.Retain}
	if site.Retain == 0 {
		site.Retain = atoll.DefaultRetain
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
		sites = []atoll.Site{}
	}
	for i := range sites {
		sites[i] = withDomains(sites[i])
	}
	WriteJSON(w, http.StatusOK, atoll.SiteList{Sites: sites})
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
	var req atoll.UpdateSiteRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	cmd := raft.UpdateSite{Name: site.Name, Domains: site.Domains}
	if req.Domains != nil {
		if cmd.Domains, err = a.checkDomains(*req.Domains); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	if req.Retain != nil {
		if *req.Retain == 0 {
			a.fail(w, r, fmt.Errorf("%w retain 0: must be between 1 and %d", atoll.ErrInvalid, atoll.MaxRetain))
			return
		}
		if err := atoll.CheckRetain(*req.Retain); err != nil {
			a.fail(w, r, err)
			return
		}
		cmd.Retain = *req.Retain
	}
	cmd.MaxBytes, cmd.MaxUploading, cmd.MaxFiles = req.MaxBytes, req.MaxUploading, req.MaxFiles
	if err := atoll.CheckSiteLimits(req.MaxBytes, req.MaxUploading, req.MaxFiles); err != nil {
		a.fail(w, r, err)
		return
	}
	if err := a.checkHTTPS(r.Context(), req); err != nil {
		a.fail(w, r, err)
		return
	}
	cmd.HTTPSOnly, cmd.HSTS = req.HTTPSOnly, req.HSTS
	if err := a.meta.Apply(r.Context(), cmd); err != nil {
		if errors.Is(err, atoll.ErrConflict) {
			err = errorf(http.StatusConflict, "a domain is already used by another site: %v", err)
		}
		a.fail(w, r, err)
		return
	}
	site.Domains = cmd.Domains
	if cmd.Retain > 0 {
		site.Retain = cmd.Retain
	}
	site.SetLimits(req.MaxBytes, req.MaxUploading, req.MaxFiles)
	site.SetHTTPS(req.HTTPSOnly, req.HSTS)
	a.log.Info("site updated", "site", site.Name, "max_bytes", site.MaxBytes, "max_uploading", site.MaxUploading, "max_files", site.MaxFiles,
		"https_only", site.HTTPSOnly, "hsts", site.HSTS)
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

// checkHTTPS accepts the HTTPS settings of an update. Turning https_only
// or hsts on needs the cluster at atoll.LevelFeatureLevels (a node below
// would drop them and serve plain HTTP); turning them off is what such a
// node does anyway. https_only also needs this node's edge to serve HTTPS
// (Config.EdgeHTTPS). Both refusals are 409.
func (a *API) checkHTTPS(ctx context.Context, req atoll.UpdateSiteRequest) error {
	on := func(b *bool) bool { return b != nil && *b }
	for _, f := range []struct {
		name string
		set  *bool
	}{{"--https-only", req.HTTPSOnly}, {"--hsts", req.HSTS}} {
		if !on(f.set) || a.cfg.RequireFeature == nil {
			continue
		}
		// An *atoll.FeatureError wraps ErrConflict: 409 with its message.
		if err := a.cfg.RequireFeature(ctx, f.name, atoll.LevelFeatureLevels); err != nil {
			return err
		}
	}
	if on(req.HTTPSOnly) && !a.cfg.EdgeHTTPS {
		return errorf(http.StatusConflict, "--https-only needs the edge's HTTPS listener: start the nodes with --https-addr (and a certificate for the site's hosts) first")
	}
	return nil
}

// site reads a site, turning "not found" into a 404 that names it.
func (a *API) site(name string) (atoll.Site, error) {
	site, err := a.meta.Site(name)
	if errors.Is(err, atoll.ErrNotFound) {
		return atoll.Site{}, errorf(http.StatusNotFound, "site %q does not exist", name)
	}
	return site, err
}

// checkDomains normalizes what a user typed (NormalizeDomain), applies the
// state machine's rule (CheckDomains) and refuses names under the cluster
// domain, where sites already answer as <site>.<domain>.
func (a *API) checkDomains(in []string) ([]string, error) {
	norm := make([]string, len(in))
	for i, d := range in {
		norm[i] = atoll.NormalizeDomain(d)
		if a.cfg.Domain != "" && strings.HasSuffix(norm[i], "."+a.cfg.Domain) {
			return nil, errorf(http.StatusBadRequest,
				"domain %q is under the cluster domain %q, where sites already answer as <site>.%s", norm[i], a.cfg.Domain, a.cfg.Domain)
		}
	}
	return atoll.CheckDomains(norm)
}

// withDomains makes an empty domain list encode as [] rather than null.
func withDomains(s atoll.Site) atoll.Site {
	if s.Domains == nil {
		s.Domains = []string{}
	}
	return s
}

// lockSite serves PUT (lock) and DELETE (unlock) /v1/sites/{site}/lock:
// a locked site keeps its live deploy, publishes are refused (409) until
// it is unlocked, and previews still work. It needs the cluster at
// atoll.LevelFeatureLevels (raft.LockSite is a new command).
func (a *API) lockSite(w http.ResponseWriter, r *http.Request) {
	site, err := a.site(r.PathValue("site"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.cfg.RequireFeature != nil {
		if err := a.cfg.RequireFeature(r.Context(), "atoll site lock", atoll.LevelFeatureLevels); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	locked := r.Method == http.MethodPut
	if err := a.meta.Apply(r.Context(), raft.LockSite{Name: site.Name, Locked: locked}); err != nil {
		a.fail(w, r, err)
		return
	}
	site.Locked = locked
	a.log.Info("site lock", "site", site.Name, "locked", locked)
	WriteJSON(w, http.StatusOK, site)
}

// refuseLocked answers 409 for a publish to a locked site.
func refuseLocked(site atoll.Site) error {
	if !site.Locked {
		return nil
	}
	return errorf(http.StatusConflict, "site %s is locked: its live deploy %s stays until `atoll site unlock %s` (DELETE /v1/sites/%s/lock); previews still work",
		site.Name, site.Published, site.Name, site.Name)
}
