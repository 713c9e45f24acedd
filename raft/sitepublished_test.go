package raft

import (
	"errors"
	"testing"

	"github.com/atoll-hosting/atoll"
)

// TestSitePublished checks that the edge's one-read resolution of a host
// answers what Site (or SiteByDomain) then Deploy answer.
func TestSitePublished(t *testing.T) {
	h := newFSM(t)
	h.must(
		CreateSite{Name: "blog", Domains: []string{"blog.example.com"}, Created: t0},
		CreateSite{Name: "empty", Domains: []string{"empty.example.com"}, Created: t0},
	)
	h.readyDeploy("blog", "old1", manifest(2))
	h.readyDeploy("blog", "new1", manifest(3))
	h.must(Publish{Deploy: "old1", At: t0}, Publish{Deploy: "new1", At: t0})

	for _, tc := range []struct {
		name       string
		key        string
		byDomain   bool
		wantSite   string
		wantDeploy string // "" : nothing published
		wantErr    error
	}{
		{name: "site by name", key: "blog", wantSite: "blog", wantDeploy: "new1"},
		{name: "site by domain", key: "blog.example.com", byDomain: true, wantSite: "blog", wantDeploy: "new1"},
		{name: "nothing published", key: "empty", wantSite: "empty"},
		{name: "nothing published, by domain", key: "empty.example.com", byDomain: true, wantSite: "empty"},
		{name: "unknown site", key: "nope", wantErr: atoll.ErrNotFound},
		{name: "unknown domain", key: "nope.example.com", byDomain: true, wantErr: atoll.ErrNotFound},
		{name: "a site name is not a domain", key: "blog", byDomain: true, wantErr: atoll.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, d, err := h.f.SitePublished(tc.key, tc.byDomain)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("SitePublished(%q, %v) error = %v, want %v", tc.key, tc.byDomain, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if s.Name != tc.wantSite || d.ID != tc.wantDeploy {
				t.Fatalf("SitePublished(%q, %v) = site %q deploy %q, want %q %q", tc.key, tc.byDomain, s.Name, d.ID, tc.wantSite, tc.wantDeploy)
			}
			if got, want := s, h.site(tc.wantSite); got.Published != want.Published || got.Created != want.Created || len(got.Domains) != len(want.Domains) {
				t.Errorf("site = %+v, Site says %+v", got, want)
			}
			if tc.wantDeploy != "" {
				if got, want := d, h.deploy(tc.wantDeploy); got != want {
					t.Errorf("deploy = %+v, Deploy says %+v", got, want)
				}
			}
		})
	}
}
