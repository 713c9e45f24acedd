package builder

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	"github.com/atoll-hosting/atoll"
)

// A site's deploys are held to atoll.SiteLimits: the cluster defaults of
// Config (SiteMaxBytes, SiteMaxUploading, MaxFiles), or the site's own where
// an admin set them (PATCH /v1/sites/{site}). Each refusal names the limit,
// its value and how to raise it.

// limits returns the limits site's deploys are held to.
func (a *API) limits(site atoll.Site) atoll.SiteLimits {
	return site.Limits(atoll.SiteLimits{
		MaxBytes:     a.cfg.SiteMaxBytes,
		MaxUploading: a.cfg.SiteMaxUploading,
		MaxFiles:     a.cfg.MaxFiles,
	})
}

// admit lets a deploy create for site in, or refuses it (429) while the
// site has as many deploys in progress as its limit allows: deploys
// uploading in the replicated state, and creates this node is serving (a
// tar upload is spooled and checked before its deploy exists; a create
// whose deploy is already recorded counts twice for that moment, which
// errs on the side of the limit). The caller calls release when the
// create is over. Concurrent creates through different nodes may each
// pass admit before the others are recorded; the limit still holds across
// the cluster because the FSM checks it again when it applies each
// CreateDeploy (proposeDeploy, from atoll.LevelFeatureLevels on), in log
// order.
func (a *API) admit(site atoll.Site, lim atoll.SiteLimits) (release func(), err error) {
	deploys, err := a.meta.Deploys(site.Name)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, d := range deploys {
		if d.State == atoll.StateUploading {
			n++
		}
	}
	if !a.creating.add(site.Name, lim.MaxUploading-n) {
		return nil, tooManyUploading(site.Name, lim.MaxUploading)
	}
	return func() { a.creating.done(site.Name) }, nil
}

// tooManyUploading is the 429 of a deploy create over its site's limit of
// deploys in progress.
func tooManyUploading(site string, max int) *apiError {
	return errorf(http.StatusTooManyRequests,
		"site %q already has %d deploys in progress, its limit (--site-max-uploading; an admin raises it for the site with: atoll site update %s --max-uploading N): "+
			"let them finish, or wait until they expire (--deploy-expiry)", site, max, site)
}

// maxUploadingFor is CreateDeploy's MaxUploading for a deploy of site:
// its limit, once the cluster's FSM checks it (atoll.LevelFeatureLevels),
// else 0 (not sent).
func (a *API) maxUploadingFor(site string) (int, error) {
	if a.meta.FeatureLevel() < atoll.LevelFeatureLevels {
		return 0, nil
	}
	s, err := a.site(site)
	if err != nil {
		return 0, err
	}
	return a.limits(s).MaxUploading, nil
}

// inFlight counts work in progress per key.
type inFlight struct {
	mu sync.Mutex
	n  map[string]int
}

func newInFlight() *inFlight { return &inFlight{n: make(map[string]int)} }

// add counts one more for key, unless key already counts room or more.
func (f *inFlight) add(key string, room int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[key] >= room {
		return false
	}
	f.n[key]++
	return true
}

// done counts one less for key.
func (f *inFlight) done(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[key]--; f.n[key] <= 0 {
		delete(f.n, key)
	}
}

// tooManyFiles is the 413 of a deploy over its site's file limit.
func tooManyFiles(site string, max int) *apiError {
	return errorf(http.StatusRequestEntityTooLarge,
		"too many files: a deploy of site %q holds at most %d (--max-files; an admin raises it for the site with: atoll site update %s --max-files N)", site, max, site)
}

// tooManyBytes is the 413 of a deploy over its site's byte limit.
func tooManyBytes(site string, max int64) *apiError {
	return errorf(http.StatusRequestEntityTooLarge,
		"the deploy's files add up to more than %d bytes, the limit of site %q (--site-max-bytes; an admin raises it for the site with: atoll site update %s --max-bytes SIZE)",
		max, site, site)
}

// checkBytes fails deploy d (best effort) and answers 413 when its total
// identity bytes are over its site's limit.
func (a *API) checkBytes(ctx context.Context, d atoll.Deploy, total int64) error {
	site, err := a.site(d.Site)
	if err != nil {
		return err
	}
	lim := a.limits(site)
	if total <= lim.MaxBytes {
		return nil
	}
	e := tooManyBytes(site.Name, lim.MaxBytes)
	a.failDeploy(ctx, d.ID, e.Error())
	return fmt.Errorf("deploy %s: %w", d.ID, e)
}
