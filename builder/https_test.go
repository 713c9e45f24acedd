package builder_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/builder/buildertest"
	"github.com/atoll-hosting/atoll/raft"
)

// TestHTTPSSettings: PATCH turns https_only and hsts on and off, leaves
// them alone when absent, and the site's reads show them.
func TestHTTPSSettings(t *testing.T) {
	srv := newLevel2Server(t, builder.Config{EdgeHTTPS: true})
	createSite(t, srv, "demo")

	var site atoll.Site
	call(t, srv, request{method: "PATCH", path: "/v1/sites/demo", body: []byte(`{"https_only":true,"hsts":true}`)}, 200, &site)
	if !site.HTTPSOnly || !site.HSTS {
		t.Errorf("PATCH answer: https_only %v, hsts %v; want both true", site.HTTPSOnly, site.HSTS)
	}
	call(t, srv, request{method: "PATCH", path: "/v1/sites/demo", body: []byte(`{"retain":4}`)}, 200, nil)
	call(t, srv, request{method: "PATCH", path: "/v1/sites/demo", body: []byte(`{"hsts":false}`)}, 200, nil)
	site = atoll.Site{} // false is left out of the JSON
	call(t, srv, request{method: "GET", path: "/v1/sites/demo"}, 200, &site)
	if !site.HTTPSOnly || site.HSTS || site.Retain != 4 {
		t.Errorf("after retain and hsts false: %+v; want https_only kept, hsts off, retain 4", site)
	}
}

// TestHTTPSSettingsRefused: turning a setting on is refused with 409 and a
// message that says what to do while the cluster is below the level that
// brings it (that one first, since it is the cluster's), or (https_only)
// while this node's edge has no HTTPS; nothing reaches the log then.
// Turning them off is always allowed.
func TestHTTPSSettingsRefused(t *testing.T) {
	held := func(ctx context.Context, feature string, level int) error {
		return &atoll.FeatureError{Feature: feature, Need: level, Have: atoll.LevelBase, HeldBy: []string{"edge-1 (v0.9.0, level 1)"}}
	}
	for _, tc := range []struct {
		name string
		cfg  builder.Config
		body string
		want []string // in the error message
	}{
		{"https-only below the level", builder.Config{RequireFeature: held}, `{"https_only":true}`,
			[]string{"--https-only needs cluster feature level 2", "edge-1 (v0.9.0, level 1)"}},
		{"hsts below the level", builder.Config{EdgeHTTPS: true, RequireFeature: held}, `{"hsts":true,"retain":3}`,
			[]string{"--hsts needs cluster feature level 2"}},
		{"https-only without an HTTPS edge", builder.Config{}, `{"https_only":true}`,
			[]string{"--https-addr"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := buildertest.NewServer(t, tc.cfg)
			createSite(t, srv, "demo")
			srv.Meta.BeforeApply(func(c raft.Command) error {
				t.Errorf("command %T reached the log", c)
				return nil
			})
			res := do(t, srv, request{method: "PATCH", path: "/v1/sites/demo", body: []byte(tc.body)})
			if res.status != http.StatusConflict {
				t.Fatalf("status %d, want 409; body %s", res.status, res.body)
			}
			msg := res.errorBody(t).Error
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
			srv.Meta.BeforeApply(nil)
			var site atoll.Site
			call(t, srv, request{method: "PATCH", path: "/v1/sites/demo", body: []byte(`{"https_only":false,"hsts":false}`)}, 200, &site)
			if site.HTTPSOnly || site.HSTS || site.Retain != atoll.DefaultRetain {
				t.Errorf("site = %+v; want nothing changed", site)
			}
		})
	}
}
