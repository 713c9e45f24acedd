package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/raft"
)

// Bounds of one bulk call (POST /v1/bulk/sites).
const (
	bulkMaxSites   = 1000
	bulkMaxEntries = 200_000
	bulkMaxBody    = 64 << 20
	// bulkChunkSites is how many sites' commands go out in one pipelined
	// apply: one log append and one replication round, about 250 commands
	// and 500 KiB for sites of 100 files, well inside the apply timeout.
	bulkChunkSites = 50
)

// BulkSitesRequest is the body of POST /v1/bulk/sites.
type BulkSitesRequest struct {
	Sites []BulkSite `json:"sites"`
}

// BulkSite is one new site of a bulk call and the manifest of its first
// deploy, whose blobs must all be stored already.
type BulkSite struct {
	Name  string            `json:"name"`
	Files map[string]string `json:"files"`
}

// BulkSitesResponse answers a bulk call: the deploy published on each site,
// in the order asked.
type BulkSitesResponse struct {
	Deploys []BulkDeploy `json:"deploys"`
}

// BulkDeploy names one site's published deploy.
type BulkDeploy struct {
	Site string `json:"site"`
	ID   string `json:"id"`
}

// BulkSites serves POST /v1/bulk/sites (admin, on the leader): it creates
// many new sites, each with one published deploy of a manifest whose blobs
// are all stored, through the same Raft commands as the API's one-site-at-a-
// time path (CreateSite, CreateDeploy, AddFiles, MarkReady, Publish), but
// bulkChunkSites sites per replication round. It exists to build a
// platform's worth of sites for measuring (bench/cmd/atoll-scale) and for
// migrations: the whole request is checked before anything is written (400
// for a bad name or manifest, 409 for a site that exists or a blob not
// stored, 413 beyond a limit); a failure in the middle leaves the sites of
// the earlier rounds created and published, and answers which round
// failed. Sites with `_redirects` or `_headers` go through the deploy API.
func (a *API) BulkSites(w http.ResponseWriter, r *http.Request) {
	var req BulkSitesRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, bulkMaxBody))
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			a.fail(w, r, errorf(http.StatusRequestEntityTooLarge, "bulk request over %d bytes: send fewer sites per call", bulkMaxBody))
			return
		}
		a.fail(w, r, jsonError(err))
		return
	}
	plans, err := a.planBulk(r.Context(), req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), applyTimeout)
	defer cancel()
	resp := BulkSitesResponse{Deploys: make([]BulkDeploy, 0, len(plans))}
	for start := 0; start < len(plans); start += bulkChunkSites {
		chunk := plans[start:min(start+bulkChunkSites, len(plans))]
		var cmds []raft.Command
		for _, p := range chunk {
			cmds = append(cmds, p.cmds...)
		}
		if err := a.applyPipelined(ctx, cmds); err != nil {
			a.fail(w, r, fmt.Errorf("bulk sites %d-%d of %d (%s to %s; the earlier ones are published): %w",
				start+1, start+len(chunk), len(plans), chunk[0].site, chunk[len(chunk)-1].site, err))
			return
		}
		for _, p := range chunk {
			resp.Deploys = append(resp.Deploys, BulkDeploy{Site: p.site, ID: p.deploy})
		}
	}
	a.log.Info("bulk sites created", "sites", len(plans))
	WriteJSON(w, http.StatusCreated, resp)
}

// bulkPlan is the commands that create one site of a bulk call.
type bulkPlan struct {
	site, deploy string
	cmds         []raft.Command
}

// planBulk checks a bulk request whole and returns each site's commands.
func (a *API) planBulk(ctx context.Context, req BulkSitesRequest) ([]bulkPlan, error) {
	if len(req.Sites) == 0 || len(req.Sites) > bulkMaxSites {
		return nil, errorf(http.StatusBadRequest, "a bulk call creates 1 to %d sites, not %d", bulkMaxSites, len(req.Sites))
	}
	manifests, hashes, err := a.checkBulk(req)
	if err != nil {
		return nil, err
	}
	missing, sizes, err := a.statAll(ctx, hashes)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, errorf(http.StatusConflict, "%d blobs of the manifests are not stored (first: %s): upload them with PUT /v1/blobs/{sha256} first", len(missing), missing[0])
	}
	now := time.Now().UTC()
	plans := make([]bulkPlan, len(req.Sites))
	for i, s := range req.Sites {
		files := manifests[i]
		site := atoll.Site{Name: s.Name}
		lim := a.limits(site)
		var bytes int64
		for _, f := range files {
			bytes += sizes[f.Hash]
		}
		if bytes > lim.MaxBytes {
			return nil, tooManyBytes(s.Name, lim.MaxBytes)
		}
		id := newDeployID()
		maxUploading := 0
		if a.meta.FeatureLevel() >= atoll.LevelFeatureLevels {
			maxUploading = lim.MaxUploading
		}
		cmds := []raft.Command{
			raft.CreateSite{Name: s.Name, Created: now},
			raft.CreateDeploy{ID: id, Site: s.Name, Files: len(files), Created: now, MaxUploading: maxUploading},
		}
		for _, b := range raft.BatchFiles(id, files) {
			cmds = append(cmds, b)
		}
		cmds = append(cmds, raft.MarkReady{Deploy: id, Bytes: bytes}, raft.Publish{Deploy: id, At: now})
		plans[i] = bulkPlan{site: s.Name, deploy: id, cmds: cmds}
	}
	return plans, nil
}

// checkBulk checks every site name and manifest of a bulk request and
// returns the manifests, sorted by path, and the distinct hashes.
func (a *API) checkBulk(req BulkSitesRequest) ([][]atoll.File, []string, error) {
	manifests := make([][]atoll.File, len(req.Sites))
	seenSite := make(map[string]bool, len(req.Sites))
	seenHash := make(map[string]bool)
	var hashes []string
	entries := 0
	for i, s := range req.Sites {
		if !atoll.ValidSiteName(s.Name) {
			return nil, nil, errorf(http.StatusBadRequest, "invalid site name %q: %s", s.Name, siteNameRule)
		}
		if seenSite[s.Name] {
			return nil, nil, errorf(http.StatusBadRequest, "site %q appears twice in the bulk request", s.Name)
		}
		seenSite[s.Name] = true
		if _, err := a.meta.Site(s.Name); err == nil {
			return nil, nil, errorf(http.StatusConflict, "site %q already exists: a bulk call only creates sites", s.Name)
		}
		if entries += len(s.Files); entries > bulkMaxEntries {
			return nil, nil, errorf(http.StatusRequestEntityTooLarge, "a bulk call holds at most %d manifest entries: send fewer sites per call", bulkMaxEntries)
		}
		m := &manifestParser{site: s.Name, maxFiles: a.limits(atoll.Site{Name: s.Name}).MaxFiles, interned: make(map[string]string)}
		for name, hash := range s.Files {
			if err := m.add(name, hash); err != nil {
				return nil, nil, err
			}
		}
		files, err := m.sorted()
		if err != nil {
			return nil, nil, fmt.Errorf("site %q: %w", s.Name, err)
		}
		if rf := ruleFilesOf(files); rf.redirects != "" || rf.headers != "" {
			return nil, nil, errorf(http.StatusBadRequest, "site %q has _redirects or _headers: create it through POST /v1/sites/{site}/deploys", s.Name)
		}
		for _, f := range files {
			if !seenHash[f.Hash] {
				seenHash[f.Hash] = true
				hashes = append(hashes, f.Hash)
			}
		}
		manifests[i] = files
	}
	return manifests, hashes, nil
}
