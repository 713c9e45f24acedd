package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/siterules"
)

// ruleFiles are the content hashes of a deploy's /_redirects and
// /_headers; "" for a file the deploy does not have.
type ruleFiles struct {
	redirects, headers string
}

func (f ruleFiles) none() bool { return f.redirects == "" && f.headers == "" }

// ruleFilesOf finds the rule files in a manifest sorted by path.
func ruleFilesOf(files []atoll.File) ruleFiles {
	find := func(p string) string {
		i, ok := slices.BinarySearchFunc(files, p, func(f atoll.File, p string) int { return strings.Compare(f.Path, p) })
		if !ok {
			return ""
		}
		return files[i].Hash
	}
	return ruleFiles{redirects: find(siterules.RedirectsFile), headers: find(siterules.HeadersFile)}
}

// ruleFilesIn finds the rule files in a recorded manifest.
func (a *API) ruleFilesIn(id string) (ruleFiles, error) {
	var f ruleFiles
	for _, x := range []struct {
		path string
		hash *string
	}{{siterules.RedirectsFile, &f.redirects}, {siterules.HeadersFile, &f.headers}} {
		h, err := a.meta.File(id, x.path)
		if err != nil && !errors.Is(err, atoll.ErrNotFound) {
			return f, fmt.Errorf("read manifest of %s: %w", id, err)
		}
		*x.hash = h
	}
	return f, nil
}

// compiledRules is what a deploy's rule files compile to: the encoded
// rules MarkReady records (nil: nothing to record), and the warnings the
// deploy's answer carries.
type compiledRules struct {
	encoded  []byte
	warnings []string
}

// rulesFeature names the feature in a FeatureError.
const rulesFeature = "_redirects and _headers"

// compileRules reads and compiles a deploy's rule files, whose blobs are
// stored. Below atoll.LevelFeatureLevels it records nothing and warns that
// the files are published as plain files. Rules that are refused (a limit,
// a forbidden header) come back as an error wrapping atoll.ErrInvalid (400)
// that names the file and line.
func (a *API) compileRules(ctx context.Context, f ruleFiles) (compiledRules, error) {
	if f.none() {
		return compiledRules{}, nil
	}
	if a.cfg.RequireFeature != nil {
		var fe *atoll.FeatureError
		switch err := a.cfg.RequireFeature(ctx, rulesFeature, atoll.LevelFeatureLevels); {
		case errors.As(err, &fe):
			return compiledRules{warnings: []string{fmt.Sprintf(
				"%s are published as plain files and not applied: %v", rulesFeature, fe)}}, nil
		case err != nil:
			return compiledRules{}, err
		}
	}
	var src siterules.Sources
	var err error
	if f.redirects != "" {
		if src.Redirects, err = a.readRuleFile(ctx, "_redirects", f.redirects); err != nil {
			return compiledRules{}, err
		}
	}
	if f.headers != "" {
		if src.Headers, err = a.readRuleFile(ctx, "_headers", f.headers); err != nil {
			return compiledRules{}, err
		}
	}
	rules, warns, err := siterules.Compile(src)
	if err != nil {
		return compiledRules{}, err
	}
	enc, err := siterules.Encode(rules)
	if err != nil {
		return compiledRules{}, err
	}
	out := compiledRules{encoded: enc}
	for _, w := range warns {
		out.warnings = append(out.warnings, w.String())
	}
	return out, nil
}

// readRuleFile reads a rule file's blob, refusing one over
// siterules.MaxFileBytes before reading it.
func (a *API) readRuleFile(ctx context.Context, name, hash string) ([]byte, error) {
	f, size, err := a.blobs.Open(ctx, hash, "")
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	if size > siterules.MaxFileBytes {
		return nil, &siterules.Error{File: name, Msg: fmt.Sprintf("%d bytes, more than the limit of %d", size, siterules.MaxFileBytes)}
	}
	b, err := io.ReadAll(io.LimitReader(f, siterules.MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// rulesHash is the Deploy.Rules the FSM records for MarkReady.Rules.
func rulesHash(encoded []byte) string {
	if len(encoded) == 0 {
		return ""
	}
	sum := sha256.Sum256(encoded)
	return hex.EncodeToString(sum[:])
}

// route serves GET /v1/deploys/{id}/route?path=P: what the edge does for
// request path P in the deploy, from its manifest and compiled rules,
// without a request.
func (a *API) route(w http.ResponseWriter, r *http.Request) {
	d, err := a.deploy(r, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	raw := r.URL.Query().Get("path")
	u, err := url.Parse(raw)
	if err != nil || !strings.HasPrefix(u.Path, "/") || len(u.Path) > atoll.MaxPathLen {
		a.fail(w, r, errorf(http.StatusBadRequest, "path=%q: give a request path starting with /, e.g. path=/blog/post?id=1", raw))
		return
	}
	resp, err := a.routeOf(d, u)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, resp)
}

// routeOf applies the edge's path rules and d's compiled rules to u.
func (a *API) routeOf(d atoll.Deploy, u *url.URL) (atoll.RouteResponse, error) {
	p := cleanRequestPath(u.Path)
	resp := atoll.RouteResponse{Deploy: d.ID, Path: u.RequestURI(), Status: http.StatusNotFound}
	file, dir, err := a.fileAt(d.ID, p, d.Rules != "")
	if err != nil {
		return resp, err
	}
	resp.File = file
	switch {
	case dir:
		resp.Status = http.StatusMovedPermanently
	case file != "":
		resp.Status = http.StatusOK
	}
	if d.Rules == "" {
		return resp, nil
	}
	enc, err := a.meta.Rules(d.ID)
	if err != nil {
		return resp, fmt.Errorf("read rules of %s: %w", d.ID, err)
	}
	m, err := siterules.Load(enc)
	if err != nil {
		return resp, err
	}
	hs := m.Headers(p)
	resp.Auth = len(hs.Auth) > 0
	for _, h := range hs.Set {
		resp.Headers = append(resp.Headers, h.Name+": "+h.Value)
	}
	resp.Remove = hs.Remove
	if rule, to, ok := m.Redirect(p, urlQuery(u.Query()), file != ""); ok {
		resp.Rule = &atoll.RouteRule{Line: rule.Line, From: rule.From, To: rule.To, Status: rule.Status, Force: rule.Force}
		resp.Target, resp.Status = to, rule.Status
	}
	return resp, nil
}

// fileAt finds what the edge serves at cleaned path p before any rule: the
// file (p, p/index.html for a path ending in "/", or p.html), or dir when
// p answers a 301 to p + "/". With rules, the rule files are not served.
func (a *API) fileAt(id, p string, rules bool) (file string, dir bool, err error) {
	has := func(q string) (bool, error) {
		if rules && (q == siterules.RedirectsFile || q == siterules.HeadersFile) {
			return false, nil
		}
		_, err := a.meta.File(id, q)
		if errors.Is(err, atoll.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	if strings.HasSuffix(p, "/") {
		ok, err := has(p + "index.html")
		if ok {
			return p + "index.html", false, err
		}
		return "", false, err
	}
	for _, q := range []string{p, p + "/index.html", p + ".html"} {
		ok, err := has(q)
		if err != nil || ok {
			return q, q == p+"/index.html", err
		}
	}
	return "", false, nil
}

// cleanRequestPath cleans a request path as the edge does, keeping a
// trailing slash.
func cleanRequestPath(p string) string {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// urlQuery gives the matcher a parsed query string.
type urlQuery url.Values

func (q urlQuery) Get(key string) (string, bool) {
	v, ok := q[key]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}
