// Package buildertest provides in-memory stand-ins for the builder API's
// dependencies and a test server around the real handler, for the tests of
// builder, builder/client and anything above them that needs an API without
// a Raft cluster.
//
// Meta applies the raft command structs to maps with the rules the FSM
// enforces (names, domains, deploy states, manifest completeness, retention)
// and records every Apply call, so a test can assert that a rejected request
// applied nothing. Blobs keeps blobs as files named by their hash in a
// folder. Neither is durable or fast; both are safe for concurrent use.
package buildertest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/raft"
)

var (
	_ builder.Meta  = (*Meta)(nil)
	_ builder.Blobs = (*Blobs)(nil)
)

// Meta is a map-backed builder.Meta.
type Meta struct {
	mu        sync.Mutex
	sites     map[string]atoll.Site
	domains   map[string]string // custom domain -> site
	deploys   map[string]atoll.Deploy
	seq       map[string]int               // deploy -> creation order, for "newest first"
	files     map[string]map[string]string // deploy -> path -> hash
	tokenHash string
	tokens    map[string]atoll.Token // id -> deploy token
	calls     []raft.Command
	next      int
	// FailApply, when set, is consulted before each command is applied; a
	// non-nil result is returned instead (the command is recorded as
	// called but not applied).
	FailApply func(cmd raft.Command) error
}

// NewMeta returns an empty Meta.
func NewMeta() *Meta {
	return &Meta{
		sites:   map[string]atoll.Site{},
		domains: map[string]string{},
		deploys: map[string]atoll.Deploy{},
		seq:     map[string]int{},
		files:   map[string]map[string]string{},
		tokens:  map[string]atoll.Token{},
	}
}

// Calls returns every command passed to Apply so far, applied or not.
func (m *Meta) Calls() []raft.Command {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

// Apply applies cmd with the FSM's rules, failing with the raft sentinels.
func (m *Meta) Apply(ctx context.Context, cmd raft.Command) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, cmd)
	if m.FailApply != nil {
		if err := m.FailApply(cmd); err != nil {
			return err
		}
	}
	switch c := cmd.(type) {
	case raft.CreateSite:
		return m.createSite(c)
	case raft.UpdateSite:
		return m.updateSite(c)
	case raft.DeleteSite:
		return m.deleteSite(c)
	case raft.CreateDeploy:
		return m.createDeploy(c)
	case raft.AddFiles:
		return m.addFiles(c)
	case raft.MarkReady:
		return m.markReady(c)
	case raft.Publish:
		return m.publish(c)
	case raft.FailDeploy:
		d, ok := m.deploys[c.Deploy]
		if !ok {
			return fmt.Errorf("deploy %q: %w", c.Deploy, atoll.ErrNotFound)
		}
		if d.State != atoll.StateUploading {
			return fmt.Errorf("deploy %s is %s: %w", d.ID, d.State, atoll.ErrConflict)
		}
		d.State = atoll.StateFailed
		m.deploys[d.ID] = d
		return nil
	case raft.SetAdminToken:
		m.tokenHash = c.Hash
		return nil
	case raft.CreateToken:
		return m.createToken(c)
	case raft.RevokeToken:
		if _, ok := m.tokens[c.ID]; !ok {
			return fmt.Errorf("token %q: %w", c.ID, atoll.ErrNotFound)
		}
		delete(m.tokens, c.ID)
		return nil
	case raft.PutNode, raft.RemoveNode:
		return nil
	}
	return fmt.Errorf("%T: %w", cmd, raft.ErrUnknownCommand)
}

func (m *Meta) checkDomains(site string, domains []string) error {
	for _, d := range domains {
		if !atoll.ValidDomain(d) {
			return fmt.Errorf("%w: domain %q", atoll.ErrInvalid, d)
		}
		if owner, ok := m.domains[d]; ok && owner != site {
			return fmt.Errorf("domain %q belongs to site %q: %w", d, owner, atoll.ErrConflict)
		}
	}
	return nil
}

func (m *Meta) createSite(c raft.CreateSite) error {
	if !atoll.ValidSiteName(c.Name) || c.Retain < 0 {
		return fmt.Errorf("%w: site %q", atoll.ErrInvalid, c.Name)
	}
	if _, ok := m.sites[c.Name]; ok {
		return fmt.Errorf("site %q: %w", c.Name, atoll.ErrExists)
	}
	if err := m.checkDomains(c.Name, c.Domains); err != nil {
		return err
	}
	s := atoll.Site{Name: c.Name, Domains: slices.Clone(c.Domains), Created: c.Created, Retain: cmp.Or(c.Retain, atoll.DefaultRetain)}
	for _, d := range s.Domains {
		m.domains[d] = s.Name
	}
	m.sites[s.Name] = s
	return nil
}

func (m *Meta) updateSite(c raft.UpdateSite) error {
	s, ok := m.sites[c.Name]
	if !ok {
		return fmt.Errorf("site %q: %w", c.Name, atoll.ErrNotFound)
	}
	if err := m.checkDomains(c.Name, c.Domains); err != nil {
		return err
	}
	for _, d := range s.Domains {
		delete(m.domains, d)
	}
	s.Domains = slices.Clone(c.Domains)
	for _, d := range s.Domains {
		m.domains[d] = s.Name
	}
	if c.Retain > 0 {
		s.Retain = c.Retain
	}
	m.sites[s.Name] = s
	return nil
}

func (m *Meta) deleteSite(c raft.DeleteSite) error {
	s, ok := m.sites[c.Name]
	if !ok {
		return fmt.Errorf("site %q: %w", c.Name, atoll.ErrNotFound)
	}
	for _, d := range s.Domains {
		delete(m.domains, d)
	}
	for id, d := range m.deploys {
		if d.Site == s.Name {
			m.dropDeploy(id)
		}
	}
	for id, t := range m.tokens {
		if t.Site == s.Name {
			delete(m.tokens, id)
		}
	}
	delete(m.sites, s.Name)
	return nil
}

func (m *Meta) createToken(c raft.CreateToken) error {
	if !atoll.ValidTokenID(c.ID) || !atoll.ValidHash(c.Hash) || len(c.Name) > atoll.MaxTokenNameLen {
		return fmt.Errorf("%w: token %q", atoll.ErrInvalid, c.ID)
	}
	t := atoll.Token{ID: c.ID, Site: c.Site, Name: c.Name, Hash: c.Hash, Created: c.Created}
	if old, ok := m.tokens[c.ID]; ok {
		if old.Site == t.Site && old.Name == t.Name && old.Hash == t.Hash && old.Created.Equal(t.Created) {
			return nil
		}
		return fmt.Errorf("token %q: %w", c.ID, atoll.ErrExists)
	}
	for _, other := range m.tokens {
		if other.Hash == c.Hash {
			return fmt.Errorf("token %q: hash of %q: %w", c.ID, other.ID, atoll.ErrConflict)
		}
	}
	if _, ok := m.sites[c.Site]; !ok {
		return fmt.Errorf("site %q: %w", c.Site, atoll.ErrNotFound)
	}
	m.tokens[c.ID] = t
	return nil
}

func (m *Meta) dropDeploy(id string) {
	delete(m.deploys, id)
	delete(m.files, id)
	delete(m.seq, id)
}

func (m *Meta) createDeploy(c raft.CreateDeploy) error {
	if !atoll.ValidDeployID(c.ID) || c.Files < 1 {
		return fmt.Errorf("%w: deploy %q with %d files", atoll.ErrInvalid, c.ID, c.Files)
	}
	if _, ok := m.sites[c.Site]; !ok {
		return fmt.Errorf("site %q: %w", c.Site, atoll.ErrNotFound)
	}
	if _, ok := m.deploys[c.ID]; ok {
		return fmt.Errorf("deploy %q: %w", c.ID, atoll.ErrExists)
	}
	m.deploys[c.ID] = atoll.Deploy{ID: c.ID, Site: c.Site, State: atoll.StateUploading, Created: c.Created, Files: c.Files}
	m.files[c.ID] = map[string]string{}
	m.next++
	m.seq[c.ID] = m.next
	return nil
}

func (m *Meta) addFiles(c raft.AddFiles) error {
	d, ok := m.deploys[c.Deploy]
	if !ok {
		return fmt.Errorf("deploy %q: %w", c.Deploy, atoll.ErrNotFound)
	}
	if d.State != atoll.StateUploading {
		return fmt.Errorf("deploy %s is %s: %w", d.ID, d.State, atoll.ErrConflict)
	}
	have := m.files[d.ID]
	added := map[string]string{}
	for _, f := range c.Files {
		if p, err := atoll.CleanPath(f.Path); err != nil || p != f.Path || !atoll.ValidHash(f.Hash) {
			return fmt.Errorf("%w: file %q %q", atoll.ErrInvalid, f.Path, f.Hash)
		}
		old, ok := have[f.Path]
		if !ok {
			old, ok = added[f.Path]
		}
		if ok && old != f.Hash {
			return fmt.Errorf("file %q already has another hash: %w", f.Path, atoll.ErrConflict)
		}
		if !ok {
			added[f.Path] = f.Hash
		}
	}
	if d.Received+len(added) > d.Files {
		return fmt.Errorf("%w: deploy %s declared %d files", atoll.ErrInvalid, d.ID, d.Files)
	}
	for p, h := range added {
		have[p] = h
	}
	d.Received += len(added)
	m.deploys[d.ID] = d
	return nil
}

func (m *Meta) markReady(c raft.MarkReady) error {
	d, ok := m.deploys[c.Deploy]
	if !ok {
		return fmt.Errorf("deploy %q: %w", c.Deploy, atoll.ErrNotFound)
	}
	if d.State != atoll.StateUploading || d.Received != d.Files {
		return fmt.Errorf("deploy %s is %s with %d of %d files: %w", d.ID, d.State, d.Received, d.Files, atoll.ErrConflict)
	}
	d.State, d.Bytes = atoll.StateReady, c.Bytes
	m.deploys[d.ID] = d
	return nil
}

func (m *Meta) publish(c raft.Publish) error {
	d, ok := m.deploys[c.Deploy]
	if !ok {
		return fmt.Errorf("deploy %q: %w", c.Deploy, atoll.ErrNotFound)
	}
	switch d.State {
	case atoll.StateReady, atoll.StatePublished, atoll.StateSuperseded:
	default:
		return fmt.Errorf("deploy %s is %s: %w", d.ID, d.State, atoll.ErrConflict)
	}
	s := m.sites[d.Site]
	if prev, ok := m.deploys[s.Published]; ok && prev.ID != d.ID {
		prev.State = atoll.StateSuperseded
		m.deploys[prev.ID] = prev
	}
	d.State, d.PublishedAt = atoll.StatePublished, c.At
	m.deploys[d.ID] = d
	s.Published = d.ID
	m.sites[s.Name] = s
	// Retention: keep the newest Retain finished deploys and the live one.
	var finished []atoll.Deploy
	for _, x := range m.deploys {
		if x.Site == s.Name && x.State != atoll.StateUploading {
			finished = append(finished, x)
		}
	}
	sort.Slice(finished, func(i, j int) bool { return m.seq[finished[i].ID] > m.seq[finished[j].ID] })
	for i, x := range finished {
		if i >= s.Retain && x.ID != s.Published {
			m.dropDeploy(x.ID)
		}
	}
	return nil
}

// Site implements builder.Meta.
func (m *Meta) Site(name string) (atoll.Site, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sites[name]
	if !ok {
		return atoll.Site{}, fmt.Errorf("site %q: %w", name, atoll.ErrNotFound)
	}
	s.Domains = slices.Clone(s.Domains)
	return s, nil
}

// Sites implements builder.Meta: every site, by name.
func (m *Meta) Sites() ([]atoll.Site, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []atoll.Site
	for _, s := range m.sites {
		s.Domains = slices.Clone(s.Domains)
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b atoll.Site) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// Deploy implements builder.Meta.
func (m *Meta) Deploy(id string) (atoll.Deploy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.deploys[id]
	if !ok {
		return atoll.Deploy{}, fmt.Errorf("deploy %q: %w", id, atoll.ErrNotFound)
	}
	return d, nil
}

// Deploys implements builder.Meta: a site's deploys, newest first.
func (m *Meta) Deploys(site string) ([]atoll.Deploy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sites[site]; !ok {
		return nil, fmt.Errorf("site %q: %w", site, atoll.ErrNotFound)
	}
	var out []atoll.Deploy
	for _, d := range m.deploys {
		if d.Site == site {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return m.seq[out[i].ID] > m.seq[out[j].ID] })
	return out, nil
}

// Files implements builder.Meta: a deploy's manifest in path order.
func (m *Meta) Files(deployID string, fn func(atoll.File) error) error {
	m.mu.Lock()
	files, ok := m.files[deployID]
	var list []atoll.File
	for p, h := range files {
		list = append(list, atoll.File{Path: p, Hash: h})
	}
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("deploy %q: %w", deployID, atoll.ErrNotFound)
	}
	slices.SortFunc(list, func(a, b atoll.File) int { return cmp.Compare(a.Path, b.Path) })
	for _, f := range list {
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// File returns the hash of path in a deploy's manifest.
func (m *Meta) File(deployID, path string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.files[deployID][path]
	if !ok {
		return "", fmt.Errorf("file %q of deploy %q: %w", path, deployID, atoll.ErrNotFound)
	}
	return h, nil
}

// AdminTokenHash implements builder.Meta.
func (m *Meta) AdminTokenHash() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tokenHash
}

// TokenByHash implements builder.Meta.
func (m *Meta) TokenByHash(hash string) (atoll.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.tokens {
		if t.Hash == hash {
			return t, nil
		}
	}
	return atoll.Token{}, fmt.Errorf("token: %w", atoll.ErrNotFound)
}

// Tokens implements builder.Meta.
func (m *Meta) Tokens() ([]atoll.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]atoll.Token, 0, len(m.tokens))
	for _, t := range m.tokens {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b atoll.Token) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// State returns a canonical dump of everything Meta holds (sites, domains,
// deploys, manifests, token hashes, deploy tokens), for before/after
// comparisons.
func (m *Meta) State() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, err := json.Marshal(struct {
		Sites   map[string]atoll.Site
		Domains map[string]string
		Deploys map[string]atoll.Deploy
		Files   map[string]map[string]string
		Token   string
		Tokens  map[string]atoll.Token
	}{m.sites, m.domains, m.deploys, m.files, m.tokenHash, m.tokens})
	if err != nil {
		panic(err) // plain maps of plain structs always marshal
	}
	return string(b)
}

// SetToken records the hash of token as the cluster's admin token, without
// counting as an Apply call.
func (m *Meta) SetToken(token string) {
	sum := sha256.Sum256([]byte(token))
	m.mu.Lock()
	m.tokenHash = hex.EncodeToString(sum[:])
	m.mu.Unlock()
}

// Blobs is a folder-backed builder.Blobs: each blob is a file named by its
// hash.
type Blobs struct {
	dir string
	mu  sync.Mutex
	// puts counts Put calls that stored new content.
	puts int
}

// NewBlobs returns a Blobs keeping its files in dir, which must exist.
func NewBlobs(dir string) *Blobs { return &Blobs{dir: dir} }

// Put implements builder.Blobs.
func (b *Blobs) Put(ctx context.Context, want string, r io.Reader) (blobstore.Info, error) {
	if want != "" && !atoll.ValidHash(want) {
		return blobstore.Info{}, fmt.Errorf("put blob %q: %w", want, blobstore.ErrInvalidHash)
	}
	tmp, err := os.CreateTemp(b.dir, ".put-*")
	if err != nil {
		return blobstore.Info{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err != nil {
		return blobstore.Info{}, fmt.Errorf("put blob: read body: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return blobstore.Info{}, err
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want != "" && got != want {
		return blobstore.Info{}, fmt.Errorf("put blob: got %s, want %s: %w", got, want, blobstore.ErrHashMismatch)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	dst := filepath.Join(b.dir, got)
	if _, err := os.Stat(dst); err == nil {
		return blobstore.Info{Hash: got, Size: n}, nil
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return blobstore.Info{}, err
	}
	b.puts++
	return blobstore.Info{Hash: got, Size: n}, nil
}

// Stat implements builder.Blobs.
// StatMany returns the stored blobs among hashes.
func (b *Blobs) StatMany(ctx context.Context, hashes []string) (map[string]blobstore.Info, error) {
	out := make(map[string]blobstore.Info)
	for _, h := range hashes {
		if info, err := b.Stat(ctx, h); err == nil {
			out[h] = info
		}
	}
	return out, ctx.Err()
}

func (b *Blobs) Stat(ctx context.Context, hash string) (blobstore.Info, error) {
	if !atoll.ValidHash(hash) {
		return blobstore.Info{}, fmt.Errorf("stat blob %q: %w", hash, blobstore.ErrInvalidHash)
	}
	fi, err := os.Stat(filepath.Join(b.dir, hash))
	if err != nil {
		return blobstore.Info{}, fmt.Errorf("stat blob %s: %w", hash, blobstore.ErrNotFound)
	}
	return blobstore.Info{Hash: hash, Size: fi.Size()}, nil
}

// Hashes lists the stored blobs, sorted.
func (b *Blobs) Hashes() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	ents, _ := os.ReadDir(b.dir)
	var out []string
	for _, e := range ents {
		if atoll.ValidHash(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// Lose removes a stored blob, as a node that lost its copy would.
func (b *Blobs) Lose(hash string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return os.Remove(filepath.Join(b.dir, hash))
}

// Puts reports how many Put calls stored new content.
func (b *Blobs) Puts() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.puts
}

// Token is the admin token of servers made by NewServer.
const Token = "test-admin-token"

// Server is the builder API on a real loopback listener with fake
// dependencies.
type Server struct {
	*httptest.Server
	API   *builder.API
	Meta  *Meta
	Blobs *Blobs
}

// NewServer starts the API with cfg (zero fields take defaults; TempDir and
// Logger default to the test's) and closes it when the test ends. The
// cluster's token is Token, known by its hash as a real cluster would.
// SiteURL, if nil, is set to "http://<host>:8080/".
func NewServer(t testing.TB, cfg builder.Config) *Server {
	t.Helper()
	if cfg.TempDir == "" {
		cfg.TempDir = t.TempDir()
	}
	if cfg.Domain == "" {
		cfg.Domain = "localhost"
	}
	if cfg.SiteURL == nil {
		cfg.SiteURL = func(host string) string { return "http://" + host + ":8080/" }
	}
	meta := NewMeta()
	meta.SetToken(Token)
	blobs := NewBlobs(t.TempDir())
	api, err := builder.New(cfg, meta, blobs)
	if err != nil {
		t.Fatalf("builder.New: %v", err)
	}
	return &Server{Server: Serve(t, api), API: api, Meta: meta, Blobs: blobs}
}

// Serve starts api on a loopback listener, closed when the test ends.
func Serve(t testing.TB, api *builder.API) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}
