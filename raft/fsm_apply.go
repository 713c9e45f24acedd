package raft

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/atoll-hosting/atoll"

	bolt "go.etcd.io/bbolt"
)

// Limits the FSM enforces on commands, so that no command can make a record
// unreasonably large.
const (
	maxReasonLen  = 1024 // bytes of FailDeploy.Reason kept
	maxNodeIDLen  = 128
	maxNodeAddrLn = 256
)

// applier applies one command inside the batch's write transaction.
//
// Every handler first validates completely, reading only, and returns a
// rejection (an error wrapping one of the package sentinels) before its first
// write; only then does it write. So a rejected command changes nothing, and
// an error after the first write can only be a storage failure, which
// ApplyBatch turns into a panic. Handlers depend on nothing but the state and
// the command (no clocks, no randomness, no map order), so every node
// reaches the same state.
type applier struct {
	tx     *bolt.Tx
	index  uint64       // log index of the entry being applied
	counts *stateCounts // the FSM's, kept in step on commit (counts.go); nil: none
}

func (a *applier) apply(data []byte) error {
	cmd, err := Decode(data)
	if err != nil {
		return err
	}
	switch c := cmd.(type) {
	case CreateSite:
		return a.createSite(c)
	case UpdateSite:
		return a.updateSite(c)
	case DeleteSite:
		return a.deleteSite(c)
	case CreateDeploy:
		return a.createDeploy(c)
	case AddFiles:
		return a.addFiles(c)
	case MarkReady:
		return a.markReady(c)
	case Publish:
		return a.publish(c)
	case FailDeploy:
		return a.failDeploy(c)
	case PutNode:
		return a.putNode(c)
	case RemoveNode:
		return a.removeNode(c)
	case SetAdminToken:
		return a.setAdminToken(c)
	case SetReplicas:
		return a.setReplicas(c)
	case CreateToken:
		return a.createToken(c)
	case RevokeToken:
		return a.revokeToken(c)
	case PutCert:
		return a.putCert(c)
	case DeleteCert:
		return a.deleteCert(c)
	case SetFeatureLevel:
		return a.setFeatureLevel(c)
	case LockSite:
		return a.lockSite(c)
	case PutACME:
		return a.putACME(c)
	case DeleteACME:
		return a.deleteACME(c)
	case LockACME:
		return a.lockACME(c)
	case UnlockACME:
		return a.unlockACME(c)
	}
	return fmt.Errorf("%w: %T", ErrUnknownCommand, cmd) // unreachable: Decode knows the same types
}

func (a *applier) bucket(name []byte) *bolt.Bucket { return a.tx.Bucket(name) }

// atLevel reports whether the state is at feature level level or above:
// the fields a level brings count only then, as an older node drops them.
func (a *applier) atLevel(level int) bool { return featureLevel(a.tx) >= level }

func (a *applier) put(bucket []byte, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %q: %w", bucket, key, err)
	}
	if err := a.countPut(bucket, key, v); err != nil {
		return err
	}
	return a.bucket(bucket).Put([]byte(key), b)
}

func invalidSiteName(name string) error {
	return fmt.Errorf("%w: site name %q: want 1-63 of a-z, 0-9 and '-', not at either end, no \"--\"",
		atoll.ErrInvalid, atoll.Truncate(name, 80))
}

// checkDomainsFree rejects domains that another site than site claims.
func (a *applier) checkDomainsFree(site string, domains []string) error {
	b := a.bucket(bucketDomains)
	for _, d := range domains {
		if owner := b.Get([]byte(d)); owner != nil && string(owner) != site {
			return fmt.Errorf("%w: domain %q belongs to site %q", atoll.ErrConflict, d, owner)
		}
	}
	return nil
}

// createSite: a retry of the very same command (same name, domains,
// retention and creation time) is a no-op, so a proposer that lost track of
// the outcome may resend it; any other CreateSite of an existing name is
// ErrExists.
func (a *applier) createSite(c CreateSite) error {
	if !atoll.ValidSiteName(c.Name) {
		return invalidSiteName(c.Name)
	}
	if err := atoll.CheckRetain(c.Retain); err != nil {
		return err
	}
	retain := c.Retain
	if retain == 0 {
		retain = atoll.DefaultRetain
	}
	domains, err := atoll.CheckDomains(c.Domains)
	if err != nil {
		return err
	}
	old, exists, err := getSite(a.tx, c.Name)
	if err != nil {
		return err
	}
	if exists {
		if slices.Equal(old.Domains, domains) && old.Retain == retain && old.Created.Equal(c.Created) {
			return nil
		}
		return fmt.Errorf("%w: site %q", atoll.ErrExists, c.Name)
	}
	if err := a.checkDomainsFree(c.Name, domains); err != nil {
		return err
	}

	for _, d := range domains {
		if err := a.bucket(bucketDomains).Put([]byte(d), []byte(c.Name)); err != nil {
			return err
		}
	}
	return a.put(bucketSites, c.Name, atoll.Site{Name: c.Name, Domains: domains, Created: c.Created, Retain: retain})
}

// updateSite replaces the custom domains and, when Retain > 0, the
// retention. A lower retention takes effect at the site's next publish.
func (a *applier) updateSite(c UpdateSite) error {
	if !atoll.ValidSiteName(c.Name) {
		return invalidSiteName(c.Name)
	}
	if err := atoll.CheckRetain(c.Retain); err != nil {
		return err
	}
	if err := atoll.CheckSiteLimits(c.MaxBytes, c.MaxUploading, c.MaxFiles); err != nil {
		return err
	}
	domains, err := atoll.CheckDomains(c.Domains)
	if err != nil {
		return err
	}
	s, exists, err := getSite(a.tx, c.Name)
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("%w: site %q", atoll.ErrNotFound, c.Name)
	}
	if err := a.checkDomainsFree(c.Name, domains); err != nil {
		return err
	}

	b := a.bucket(bucketDomains)
	for _, d := range s.Domains {
		if !slices.Contains(domains, d) {
			if err := b.Delete([]byte(d)); err != nil {
				return err
			}
			if err := a.dropCert(d); err != nil {
				return err
			}
		}
	}
	for _, d := range domains {
		if err := b.Put([]byte(d), []byte(c.Name)); err != nil {
			return err
		}
	}
	s.Domains = domains
	if c.Retain > 0 {
		s.Retain = c.Retain
	}
	s.SetLimits(c.MaxBytes, c.MaxUploading, c.MaxFiles)
	if a.atLevel(atoll.LevelFeatureLevels) { // below, older nodes drop them
		s.SetHTTPS(c.HTTPSOnly, c.HSTS)
	}
	return a.put(bucketSites, c.Name, s)
}

func (a *applier) deleteSite(c DeleteSite) error {
	s, exists, err := getSite(a.tx, c.Name)
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("%w: site %q", atoll.ErrNotFound, c.Name)
	}

	for _, d := range s.Domains {
		if err := a.bucket(bucketDomains).Delete([]byte(d)); err != nil {
			return err
		}
		if err := a.dropCert(d); err != nil {
			return err
		}
	}
	type entry struct {
		key []byte
		id  string
	}
	var all []entry // collected first: bbolt cursors and deletes do not mix
	if err := eachSiteDeploy(a.tx, c.Name, func(k []byte, id string) error {
		all = append(all, entry{slices.Clone(k), id})
		return nil
	}); err != nil {
		return err
	}
	for _, e := range all {
		if err := a.deleteDeploy(e.key, e.id); err != nil {
			return err
		}
	}
	if err := a.revokeSiteTokens(c.Name); err != nil {
		return err
	}
	if err := a.countDelete(bucketSites, c.Name); err != nil {
		return err
	}
	return a.bucket(bucketSites).Delete([]byte(c.Name))
}

// deleteDeploy removes a deploy, its manifest and its order-index entry.
func (a *applier) deleteDeploy(orderKey []byte, id string) error {
	if err := a.bucket(bucketSiteDeploys).Delete(orderKey); err != nil {
		return err
	}
	if err := a.countDelete(bucketDeploys, id); err != nil {
		return err
	}
	if err := a.bucket(bucketDeploys).Delete([]byte(id)); err != nil {
		return err
	}
	if err := a.dropManifest(id, false); err != nil {
		return err
	}
	return a.bucket(bucketRules).Delete([]byte(id))
}

// createDeploy: the same id for the same site, file count and base is a
// no-op (a retry); any other reuse of an id is ErrExists. With a base (at
// atoll.LevelDeployBase) the new manifest starts as the base's, less
// Remove: see CreateDeploy.
func (a *applier) createDeploy(c CreateDeploy) error {
	if !atoll.ValidDeployID(c.ID) {
		return fmt.Errorf("%w: deploy id %q: want 1-32 of a-z and 0-9", atoll.ErrInvalid, atoll.Truncate(c.ID, 80))
	}
	if c.Files < 0 {
		return fmt.Errorf("%w: deploy %q declares %d files", atoll.ErrInvalid, c.ID, c.Files)
	}
	if !a.atLevel(atoll.LevelDeployBase) { // below, older nodes drop them
		c.Base, c.Remove = "", nil
	}
	old, exists, err := getDeploy(a.tx, c.ID)
	if err != nil {
		return err
	}
	if exists {
		if old.Site == c.Site && old.Files == c.Files && old.Base == c.Base {
			return nil
		}
		return fmt.Errorf("%w: deploy %q", atoll.ErrExists, c.ID)
	}
	if _, ok, err := getSite(a.tx, c.Site); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: site %q", atoll.ErrNotFound, c.Site)
	}
	if c.MaxUploading > 0 && a.atLevel(atoll.LevelFeatureLevels) {
		n, err := countUploading(a.tx, c.Site)
		if err != nil {
			return err
		}
		if n >= c.MaxUploading {
			return fmt.Errorf("%w: site %q already has %d deploys uploading, its limit", atoll.ErrLimit, c.Site, n)
		}
	}
	kept, err := a.checkBase(c)
	if err != nil {
		return err
	}

	rec := deployRecord{
		Deploy: atoll.Deploy{ID: c.ID, Site: c.Site, State: atoll.StateUploading, Created: c.Created, Files: c.Files, Base: c.Base},
		Seq:    a.index,
	}
	if a.atLevel(atoll.LevelFeatureLevels) { // below, older nodes drop it
		if err := atoll.CheckMessage(c.Message); err != nil {
			return fmt.Errorf("deploy %q: %w", c.ID, err)
		}
		rec.Message = c.Message
	}
	if err := a.createManifest(c.ID, c.Files); err != nil {
		return err
	}
	if c.Base != "" {
		if err := a.copyManifest(c.ID, c.Base, c.Remove); err != nil {
			return err
		}
		rec.Received = kept
	}
	if err := a.bucket(bucketSiteDeploys).Put(siteDeployKey(c.Site, a.index), []byte(c.ID)); err != nil {
		return err
	}
	return a.put(bucketDeploys, c.ID, rec)
}

// checkBase validates a create's base, reading only, and returns how many
// of the base's entries the new manifest keeps (0 without a base): the
// base is a finished deploy of the same site (ErrConflict otherwise, also
// when it is gone), Remove is sorted, each path once and in the base's
// manifest (ErrInvalid otherwise), and what is kept fits in Files.
func (a *applier) checkBase(c CreateDeploy) (int, error) {
	if c.Base == "" {
		if len(c.Remove) > 0 {
			return 0, fmt.Errorf("%w: deploy %q: paths to remove without a base", atoll.ErrInvalid, c.ID)
		}
		return 0, nil
	}
	b, ok, err := getDeploy(a.tx, c.Base)
	if err != nil {
		return 0, err
	}
	switch {
	case !ok:
		return 0, fmt.Errorf("%w: base deploy %q of deploy %q no longer exists", atoll.ErrConflict, atoll.Truncate(c.Base, 80), c.ID)
	case b.Site != c.Site:
		return 0, fmt.Errorf("%w: base deploy %q is of site %q, not %q", atoll.ErrConflict, c.Base, b.Site, c.Site)
	case b.State != atoll.StateReady && b.State != atoll.StatePublished && b.State != atoll.StateSuperseded:
		return 0, fmt.Errorf("%w: base deploy %q is %s, want ready, published or superseded", atoll.ErrConflict, c.Base, b.State)
	}
	get, found, err := manifestLookup(a.tx, []byte(c.Base))
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("base deploy %q has no manifest", c.Base)
	}
	for i, p := range c.Remove {
		if i > 0 && p <= c.Remove[i-1] {
			return 0, fmt.Errorf("%w: deploy %q: paths to remove must be sorted, each once (%s after %s)",
				atoll.ErrInvalid, c.ID, atoll.Truncate(p, 80), atoll.Truncate(c.Remove[i-1], 80))
		}
		if sum, err := get(p); err != nil {
			return 0, err
		} else if sum == nil {
			return 0, fmt.Errorf("%w: deploy %q: %s is not in base deploy %q", atoll.ErrInvalid, c.ID, atoll.Truncate(p, 80), c.Base)
		}
	}
	kept := b.Received - len(c.Remove) // a finished deploy's Received is its manifest's size
	if kept > c.Files {
		return 0, fmt.Errorf("%w: deploy %q declares %d files but keeps %d of base deploy %q",
			atoll.ErrInvalid, c.ID, c.Files, kept, c.Base)
	}
	return kept, nil
}

// copyChunk is how many of a base's entries copyManifest holds before
// it writes them: a compact manifest (at most compactMaxFiles) is written
// once, a bucket page by page, and a large base is never held whole.
const copyChunk = 4096

// copyManifest adds the entries of deploy base's manifest, except the
// paths in remove (sorted), to deploy id's empty manifest, from either
// layout to either. The base is walked in key order, so the new entries
// arrive sorted.
func (a *applier) copyManifest(id, base string, remove []string) error {
	var add []atoll.File
	var sums [][]byte
	flush := func() error {
		err := a.addEntries(id, add, sums)
		add, sums = add[:0], sums[:0]
		return err
	}
	_, err := eachEntry(a.tx, []byte(base), nil, func(k, v []byte) error {
		for len(remove) > 0 && remove[0] < string(k) {
			remove = remove[1:]
		}
		if len(remove) > 0 && remove[0] == string(k) {
			remove = remove[1:]
			return nil
		}
		add = append(add, atoll.File{Path: string(k)})
		sums = append(sums, bytes.Clone(v))
		if len(add) >= copyChunk {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// countUploading counts site's deploys in state uploading.
func countUploading(tx *bolt.Tx, site string) (int, error) {
	n := 0
	err := eachSiteDeploy(tx, site, func(_ []byte, id string) error {
		d, ok, err := getDeploy(tx, id)
		if err == nil && ok && d.State == atoll.StateUploading {
			n++
		}
		return err
	})
	return n, err
}

// mustDeploy loads a deploy or returns ErrNotFound.
func (a *applier) mustDeploy(id string) (deployRecord, error) {
	d, ok, err := getDeploy(a.tx, id)
	if err != nil {
		return deployRecord{}, err
	}
	if !ok {
		return deployRecord{}, fmt.Errorf("%w: deploy %q", atoll.ErrNotFound, atoll.Truncate(id, 80))
	}
	return d, nil
}

// addFiles stores manifest entries. The whole batch is checked first:
// paths must already be in CleanPath form, hashes lowercase hex SHA-256, and
// the manifest may not grow beyond the declared file count. A path already
// present with the same hash (in the manifest or earlier in the batch) is a
// no-op, with another hash ErrConflict. Once the deploy is ready (or
// published, superseded) a batch whose every entry it holds is a no-op too:
// a proposer resends a pipeline whose outcome it did not learn, and
// MarkReady may have followed the batch. Any other batch is ErrConflict.
func (a *applier) addFiles(c AddFiles) error {
	d, err := a.mustDeploy(c.Deploy)
	if err != nil {
		return err
	}
	id := []byte(c.Deploy)
	if d.State != atoll.StateUploading {
		if d.State != atoll.StateFailed {
			if all, err := holdsAll(a.tx, id, c.Files); err != nil || all {
				return err // all: a resend of a batch applied before the deploy finished
			}
		}
		return fmt.Errorf("%w: deploy %q is %s, files can only be added while uploading", atoll.ErrConflict, c.Deploy, d.State)
	}
	get, found, err := manifestLookup(a.tx, id)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("deploy %q has no manifest", c.Deploy)
	}
	var add []atoll.File // new entries, in batch order
	var sums [][]byte
	batch := make(map[string]string, len(c.Files))
	added := 0
	for _, f := range c.Files {
		clean, err := atoll.CleanPath(f.Path)
		if err != nil {
			return err
		}
		if clean != f.Path {
			return fmt.Errorf("%w: path %q is not normalized, want %q", atoll.ErrInvalid, atoll.Truncate(f.Path, 80), atoll.Truncate(clean, 80))
		}
		if !atoll.ValidHash(f.Hash) {
			return fmt.Errorf("%w: hash %q of %s: want lowercase hex SHA-256", atoll.ErrInvalid, atoll.Truncate(f.Hash, 80), atoll.Truncate(f.Path, 80))
		}
		if prev, ok := batch[f.Path]; ok {
			if prev != f.Hash {
				return fmt.Errorf("%w: %s listed twice with different hashes", atoll.ErrConflict, atoll.Truncate(f.Path, 80))
			}
			continue
		}
		batch[f.Path] = f.Hash
		v, err := get(f.Path)
		if err != nil {
			return err
		}
		if v != nil {
			if hex.EncodeToString(v) != f.Hash {
				return fmt.Errorf("%w: %s already has hash %x in deploy %q", atoll.ErrConflict, atoll.Truncate(f.Path, 80), v, c.Deploy)
			}
			continue
		}
		sum, _ := hex.DecodeString(f.Hash) // ValidHash above
		add, sums = append(add, f), append(sums, sum)
		added++
	}
	if d.Received+added > d.Files {
		return fmt.Errorf("%w: deploy %q declared %d files, this batch would make %d",
			atoll.ErrInvalid, c.Deploy, d.Files, d.Received+added)
	}
	if added == 0 {
		return nil
	}
	if err := a.addEntries(c.Deploy, add, sums); err != nil {
		return err
	}
	d.Received += added
	return a.put(bucketDeploys, d.ID, d)
}

// markReady: an uploading deploy whose manifest is complete becomes ready,
// with its compiled rules if any. Rules count only at
// atoll.LevelFeatureLevels and above: below, the command means what it
// means to older nodes, which drop the field. A repeat with the same byte
// count is a no-op on a ready deploy, and on one published (or superseded)
// since: a proposer that lost track of a pipeline [..., MarkReady, Publish]
// resends all of it (node's ApplyPipelined after a leader change, the
// bulk path). Either answer leaves the state as it is, so nodes of older
// binaries, which refuse the latter, reach the same state.
func (a *applier) markReady(c MarkReady) error {
	if c.Bytes < 0 {
		return fmt.Errorf("%w: deploy %q: %d bytes", atoll.ErrInvalid, c.Deploy, c.Bytes)
	}
	d, err := a.mustDeploy(c.Deploy)
	if err != nil {
		return err
	}
	switch {
	case d.Bytes == c.Bytes && (d.State == atoll.StateReady || d.State == atoll.StatePublished || d.State == atoll.StateSuperseded):
		return nil
	case d.State != atoll.StateUploading:
		return fmt.Errorf("%w: deploy %q is %s, not uploading", atoll.ErrConflict, c.Deploy, d.State)
	case d.Received != d.Files:
		return fmt.Errorf("%w: deploy %q has %d of %d manifest entries", atoll.ErrConflict, c.Deploy, d.Received, d.Files)
	}

	d.State = atoll.StateReady
	d.Bytes = c.Bytes
	if len(c.Rules) > 0 && a.atLevel(atoll.LevelFeatureLevels) {
		sum := sha256.Sum256(c.Rules)
		d.Rules = hex.EncodeToString(sum[:])
		if err := a.bucket(bucketRules).Put([]byte(d.ID), c.Rules); err != nil {
			return err
		}
	}
	return a.put(bucketDeploys, d.ID, d)
}

// lockSite pins or unpins a site's live deploy (see LockSite).
func (a *applier) lockSite(c LockSite) error {
	s, ok, err := getSite(a.tx, c.Name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: site %q", atoll.ErrNotFound, c.Name)
	}
	if s.Locked == c.Locked {
		return nil
	}
	s.Locked = c.Locked
	return a.put(bucketSites, s.Name, s)
}

// publish makes a ready, published or superseded deploy its site's live
// one: the previous live deploy becomes superseded, then the site is pruned
// (see prune). Publishing the live deploy again is a no-op.
func (a *applier) publish(c Publish) error {
	d, err := a.mustDeploy(c.Deploy)
	if err != nil {
		return err
	}
	if d.State == atoll.StateUploading || d.State == atoll.StateFailed {
		return fmt.Errorf("%w: deploy %q is %s, only ready deploys can be published", atoll.ErrConflict, c.Deploy, d.State)
	}
	s, ok, err := getSite(a.tx, d.Site)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: site %q of deploy %q", atoll.ErrNotFound, d.Site, d.ID)
	}
	if s.Published == d.ID {
		return nil
	}
	if s.Locked {
		return fmt.Errorf("%w: site %q is locked: its live deploy %s stays until the site is unlocked", atoll.ErrConflict, s.Name, s.Published)
	}

	if s.Published != "" {
		prev, ok, err := getDeploy(a.tx, s.Published)
		if err != nil {
			return err
		}
		if ok && prev.State == atoll.StatePublished {
			prev.State = atoll.StateSuperseded
			if err := a.put(bucketDeploys, prev.ID, prev); err != nil {
				return err
			}
		}
	}
	d.State = atoll.StatePublished
	d.PublishedAt = c.At
	if err := a.put(bucketDeploys, d.ID, d); err != nil {
		return err
	}
	s.Published = d.ID
	if err := a.put(bucketSites, s.Name, s); err != nil {
		return err
	}
	return a.prune(s)
}

// prune deletes, with their manifests, the site's deploys beyond its Retain
// newest finished ones (by creation order). It never deletes the live
// deploy, and never an uploading one: those neither count nor go, so a
// publish cannot pull a manifest from under an upload in progress; an
// abandoned upload goes once someone fails it (FailDeploy).
func (a *applier) prune(s atoll.Site) error {
	type entry struct {
		key []byte
		id  string
	}
	var drop []entry
	kept := 0
	if err := eachSiteDeploy(a.tx, s.Name, func(k []byte, id string) error {
		d, ok, err := getDeploy(a.tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("deploy index of site %q names missing deploy %q", s.Name, id)
		}
		switch {
		case d.State == atoll.StateUploading:
		case kept < s.Retain:
			kept++
		case id == s.Published:
		default:
			drop = append(drop, entry{slices.Clone(k), id})
		}
		return nil
	}); err != nil {
		return err
	}
	for _, e := range drop {
		if err := a.deleteDeploy(e.key, e.id); err != nil {
			return err
		}
	}
	return nil
}

// failDeploy: an uploading deploy becomes failed; failing a failed deploy
// again is a no-op, except that DropFiles still empties its manifest.
// DropFiles counts only at atoll.LevelFeatureLevels and above: below, the
// command means what it meant to nodes from before the field, so a
// proposer that sets it too early cannot make nodes disagree.
func (a *applier) failDeploy(c FailDeploy) error {
	d, err := a.mustDeploy(c.Deploy)
	if err != nil {
		return err
	}
	drop := c.DropFiles && a.atLevel(atoll.LevelFeatureLevels)
	switch d.State {
	case atoll.StateFailed:
		if !drop || d.Received == 0 {
			return nil
		}
	case atoll.StateUploading:
		d.State = atoll.StateFailed
		d.Reason = c.Reason
		if len(d.Reason) > maxReasonLen {
			d.Reason = strings.ToValidUTF8(d.Reason[:maxReasonLen], "")
		}
	default:
		return fmt.Errorf("%w: deploy %q is %s, only uploading deploys can fail", atoll.ErrConflict, c.Deploy, d.State)
	}
	if drop {
		// Received counts the manifest's entries; both go to zero.
		if err := a.emptyManifest(d.ID); err != nil {
			return err
		}
		d.Received = 0
	}
	return a.put(bucketDeploys, d.ID, d)
}

// emptyManifest replaces a deploy's manifest with an empty one of the
// same layout: its pages go back to bbolt's freelist (its blobs lose a
// reference), and readers see a deploy without files.
func (a *applier) emptyManifest(id string) error { return a.dropManifest(id, true) }

// validNodeID reports whether id is 1-128 of [A-Za-z0-9._:-].
func validNodeID(id string) bool {
	if len(id) < 1 || len(id) > maxNodeIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// putNode adds or replaces a node table entry. An empty state means active.
func (a *applier) putNode(c PutNode) error {
	n := c.Node
	if !validNodeID(n.ID) {
		return fmt.Errorf("%w: node id %q: want 1-%d of A-Z, a-z, 0-9, '.', '_', ':', '-'", atoll.ErrInvalid, atoll.Truncate(n.ID, 80), maxNodeIDLen)
	}
	if n.Role != atoll.RoleCore && n.Role != atoll.RoleEdge {
		return fmt.Errorf("%w: node %q: role %q, want %q or %q", atoll.ErrInvalid, n.ID, atoll.Truncate(n.Role, 80), atoll.RoleCore, atoll.RoleEdge)
	}
	if n.State == "" {
		n.State = atoll.NodeActive
	}
	if n.State != atoll.NodeActive && n.State != atoll.NodeDraining && n.State != atoll.NodeRemoved {
		return fmt.Errorf("%w: node %q: state %q", atoll.ErrInvalid, n.ID, atoll.Truncate(n.State, 80))
	}
	for _, addr := range []string{n.RaftAddr, n.APIAddr, n.HTTPAddr} {
		if len(addr) > maxNodeAddrLn {
			return fmt.Errorf("%w: node %q: address of %d bytes", atoll.ErrInvalid, n.ID, len(addr))
		}
	}
	return a.put(bucketNodes, n.ID, n)
}

func (a *applier) removeNode(c RemoveNode) error {
	if a.bucket(bucketNodes).Get([]byte(c.ID)) == nil {
		return fmt.Errorf("%w: node %q", atoll.ErrNotFound, atoll.Truncate(c.ID, 80))
	}
	return a.bucket(bucketNodes).Delete([]byte(c.ID))
}

// setFeatureLevel raises the cluster's feature level. The same level again
// is a no-op, so a leader that lost track of the outcome may resend it.
func (a *applier) setFeatureLevel(c SetFeatureLevel) error {
	have := featureLevel(a.tx)
	switch {
	case c.Level > atoll.MaxFeatureLevel:
		// Unreachable on a node that knows the command: a leader proposes
		// only levels every node knows. Refusing keeps the state honest.
		return fmt.Errorf("%w: feature level %d: this node knows up to %d", atoll.ErrInvalid, c.Level, atoll.MaxFeatureLevel)
	case c.Level < have:
		return fmt.Errorf("%w: feature level %d: the cluster is at %d, and levels never go down", atoll.ErrConflict, c.Level, have)
	case c.Level == have:
		return nil
	}
	return a.bucket(bucketMeta).Put(keyFeatureLevel, []byte(strconv.Itoa(c.Level)))
}

func (a *applier) setAdminToken(c SetAdminToken) error {
	if !atoll.ValidHash(c.Hash) {
		return fmt.Errorf("%w: admin token hash: want lowercase hex SHA-256", atoll.ErrInvalid)
	}
	return a.bucket(bucketMeta).Put(keyAdminToken, []byte(c.Hash))
}

// maxReplicas bounds the replication factor.
const maxReplicas = 9

func (a *applier) setReplicas(c SetReplicas) error {
	if c.N < 1 || c.N > maxReplicas {
		return fmt.Errorf("%w: replicas %d: want 1-%d", atoll.ErrInvalid, c.N, maxReplicas)
	}
	return a.bucket(bucketMeta).Put(keyReplicas, []byte(strconv.Itoa(c.N)))
}

// createToken records a deploy token for an existing site, with its hash in
// the hash index. The very same command again (same id, site, name, hash and
// creation time) is a no-op, so a proposer that lost track of the outcome may
// resend it.
func (a *applier) createToken(c CreateToken) error {
	if !atoll.ValidTokenID(c.ID) {
		return fmt.Errorf("%w: token id %q: want 1-32 of a-z and 0-9", atoll.ErrInvalid, atoll.Truncate(c.ID, 80))
	}
	if !atoll.ValidHash(c.Hash) {
		return fmt.Errorf("%w: token %q: hash: want lowercase hex SHA-256", atoll.ErrInvalid, c.ID)
	}
	if err := atoll.CheckTokenName(c.Name); err != nil {
		return err
	}
	old, exists, err := getToken(a.tx, c.ID)
	if err != nil {
		return err
	}
	if exists {
		if old.Site == c.Site && old.Name == c.Name && old.Hash == c.Hash && old.Created.Equal(c.Created) {
			return nil
		}
		return fmt.Errorf("%w: token %q", atoll.ErrExists, c.ID)
	}
	if owner := a.bucket(bucketTokenHashes).Get([]byte(c.Hash)); owner != nil {
		return fmt.Errorf("%w: token %q: this secret is already token %q's", atoll.ErrConflict, c.ID, owner)
	}
	if _, ok, err := getSite(a.tx, c.Site); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: site %q", atoll.ErrNotFound, atoll.Truncate(c.Site, 80))
	}

	if err := a.bucket(bucketTokenHashes).Put([]byte(c.Hash), []byte(c.ID)); err != nil {
		return err
	}
	return a.put(bucketTokens, c.ID, atoll.Token{ID: c.ID, Site: c.Site, Name: c.Name, Hash: c.Hash, Created: c.Created})
}

func (a *applier) revokeToken(c RevokeToken) error {
	t, exists, err := getToken(a.tx, c.ID)
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("%w: token %q", atoll.ErrNotFound, atoll.Truncate(c.ID, 80))
	}
	return a.deleteToken(t)
}

// deleteToken removes a token and its hash index entry.
func (a *applier) deleteToken(t atoll.Token) error {
	if err := a.bucket(bucketTokenHashes).Delete([]byte(t.Hash)); err != nil {
		return err
	}
	return a.bucket(bucketTokens).Delete([]byte(t.ID))
}

// revokeSiteTokens deletes every token scoped to site. Tokens are few (a
// handful per site), so a scan of the table is cheaper than keeping a
// third index.
func (a *applier) revokeSiteTokens(site string) error {
	var drop []atoll.Token // collected first: bbolt cursors and deletes do not mix
	if err := a.bucket(bucketTokens).ForEach(func(k, v []byte) error {
		var t atoll.Token
		if err := json.Unmarshal(v, &t); err != nil {
			return fmt.Errorf("decode token %q: %w", k, err)
		}
		if t.Site == site {
			drop = append(drop, t)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, t := range drop {
		if err := a.deleteToken(t); err != nil {
			return err
		}
	}
	return nil
}

// holdsAll reports whether deploy's manifest has every entry of files,
// each with the same hash.
func holdsAll(tx *bolt.Tx, deploy []byte, files []atoll.File) (bool, error) {
	get, _, err := manifestLookup(tx, deploy)
	if err != nil {
		return false, err
	}
	for _, f := range files {
		v, err := get(f.Path)
		if err != nil || v == nil || hex.EncodeToString(v) != f.Hash {
			return false, err
		}
	}
	return true, nil
}
