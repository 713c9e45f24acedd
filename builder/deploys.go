package builder

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/raft"
)

// deployIDLen is the length of a deploy id: 36^10 ≈ 3.7e15 values, so a
// collision within a site's lifetime is out of reach, and "<id>--<site>"
// stays a short host label.
const deployIDLen = 10

// applyTimeout bounds the sequence of commands that records one deploy. It
// is detached from the request so that a client hanging up halfway does not
// leave a half-written manifest behind.
const applyTimeout = 10 * time.Minute

// createDeploy serves POST /v1/sites/{site}/deploys: a JSON manifest starts
// the digest flow, a tar (optionally gzipped) is a one-shot upload.
func (a *API) createDeploy(w http.ResponseWriter, r *http.Request) {
	site, err := a.site(r.PathValue("site"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	publish := false
	if v := r.URL.Query().Get("publish"); v != "" {
		if publish, err = strconv.ParseBool(v); err != nil {
			a.fail(w, r, errorf(http.StatusBadRequest, "publish=%q: use publish=true or publish=false", v))
			return
		}
	}
	message, err := a.deployMessage(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if v := r.URL.Query().Get("dry_run"); v != "" {
		switch dry, err := strconv.ParseBool(v); {
		case err != nil:
			a.fail(w, r, errorf(http.StatusBadRequest, "dry_run=%q: use dry_run=true or dry_run=false", v))
			return
		case dry && mt != "application/json":
			a.fail(w, r, errorf(http.StatusBadRequest, "dry_run=true takes a JSON manifest, not %q", mt))
			return
		case dry:
			a.dryRun(w, r, site)
			return
		}
	}
	if publish {
		if err := refuseLocked(site); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	release, err := a.admit(site, a.limits(site))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer release()
	switch mt {
	case "application/json":
		if publish {
			a.fail(w, r, errorf(http.StatusBadRequest,
				"publish=true applies to tar uploads; with a JSON manifest, upload the required blobs and then POST /v1/deploys/{id}/publish"))
			return
		}
		a.createDigestDeploy(w, r, site, message)
	case "application/x-tar", "application/tar":
		a.createTarDeploy(w, r, site, false, publish, message)
	case "application/gzip", "application/x-gzip", "application/x-compressed-tar", "application/tar+gzip":
		a.createTarDeploy(w, r, site, true, publish, message)
	default:
		a.fail(w, r, errorf(http.StatusUnsupportedMediaType,
			"unsupported Content-Type %q: send application/json (a manifest), application/x-tar or application/gzip (a gzipped tar)",
			r.Header.Get("Content-Type")))
	}
}

// createDigestDeploy records a manifest and answers which blobs are still
// needed. The request is checked before the first command is applied; the
// blobs are checked while the manifest is being recorded (both wait on
// other nodes, and only the answer needs the result), and a failed check
// marks the new deploy failed.
func (a *API) createDigestDeploy(w http.ResponseWriter, r *http.Request, site atoll.Site, message string) {
	lim := a.limits(site)
	files, hashes, skipped, err := a.readManifest(w, r, site)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	membership := a.membership() // before the check: a change during it invalidates the answer
	startCheck := func(base *deployBase) <-chan blobCheck {
		checked := make(chan blobCheck, 1)
		go func() {
			c := a.checkBlobs(r.Context(), files, hashes, base)
			if c.err == nil && c.bytes > lim.MaxBytes { // already over with only the blobs stored
				c.err = tooManyBytes(site.Name, lim.MaxBytes)
			}
			checked <- c
		}()
		return checked
	}
	d, check, err := a.recordDeploy(r.Context(), atoll.Deploy{Site: site.Name, Message: message}, files, startCheck, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.confirmed.remember(d.ID, membership, check.missing, check.bytes)
	a.log.Info("deploy created", "site", site.Name, "deploy", d.ID, "files", len(files), "base", d.Base, "required", len(check.missing))
	resp := a.deployResponse(d)
	resp.Required, resp.Skipped = check.missing, skipped
	if check.rules != nil {
		resp.Warnings = check.rules.warnings
	}
	if resp.Required == nil {
		resp.Required = []string{} // "required": [] tells the client there is nothing to upload
	}
	WriteJSON(w, http.StatusCreated, resp)
}

// readManifest reads and checks a create's JSON manifest (parseManifest,
// within MaxJSONBytes and the site's max_files) and returns its entries,
// their distinct hashes sorted, and the count of entries left out.
func (a *API) readManifest(w http.ResponseWriter, r *http.Request, site atoll.Site) ([]atoll.File, []string, int, error) {
	if r.ContentLength > a.cfg.MaxJSONBytes {
		return nil, nil, 0, errorf(http.StatusRequestEntityTooLarge, "manifest larger than the limit of %d bytes", a.cfg.MaxJSONBytes)
	}
	files, skipped, err := parseManifest(http.MaxBytesReader(w, r.Body, a.cfg.MaxJSONBytes), site.Name, a.limits(site).MaxFiles)
	if err != nil {
		return nil, nil, 0, err
	}
	hashes := make([]string, len(files))
	for i, f := range files {
		hashes[i] = f.Hash
	}
	slices.Sort(hashes)
	return files, slices.Compact(hashes), skipped, nil
}

// dryRun serves a create with ?dry_run=true and a JSON manifest: the
// manifest is checked as for a create and the answer says which blobs it
// would require, but nothing is recorded (no deploy, no id).
func (a *API) dryRun(w http.ResponseWriter, r *http.Request, site atoll.Site) {
	files, hashes, skipped, err := a.readManifest(w, r, site)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	missing, _, err := a.statAll(r.Context(), hashes)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	resp := atoll.DeployResponse{Deploy: atoll.Deploy{Site: site.Name, Files: len(files)}, Required: missing, Skipped: skipped}
	if resp.Required == nil {
		resp.Required = []string{}
	}
	WriteJSON(w, http.StatusOK, resp)
}

// blobCheck is the outcome of checking a manifest's blobs: the ones not
// stored (sorted), and the total size of the files whose blobs are stored
// (all of them when none is missing). rules, once every blob is stored, is
// what the rule files compiled to (nil: not compiled yet; readyCommand
// compiles them).
type blobCheck struct {
	missing []string
	bytes   int64
	err     error
	rules   *compiledRules
}

// readyCommand returns the MarkReady of complete deploy id, compiling its
// rule files f into it unless c holds them compiled already.
func (a *API) readyCommand(ctx context.Context, id string, c *blobCheck, f ruleFiles) (raft.MarkReady, error) {
	if c.rules == nil {
		cr, err := a.compileRules(ctx, f)
		if err != nil {
			return raft.MarkReady{}, fmt.Errorf("compile rules: %w", err)
		}
		c.rules = &cr
	}
	return raft.MarkReady{Deploy: id, Bytes: c.bytes, Rules: c.rules.encoded}, nil
}

// checkDone returns a check already made, whatever the base.
func checkDone(c blobCheck) func(*deployBase) <-chan blobCheck {
	return func(*deployBase) <-chan blobCheck {
		ch := make(chan blobCheck, 1)
		ch <- c
		return ch
	}
}

// recordDeploy applies CreateDeploy for a new deploy of proto.Site (with
// proto.Message), the manifest in raft.BatchFiles batches,
// and then, once the check delivers and nothing is missing, MarkReady, and
// Publish if asked. files must be sorted by path. From
// atoll.LevelDeployBase on the deploy is recorded from the site's live
// deploy when that saves entries (planBase; base.go): only the entries
// that differ travel, and the FSM copies the rest. check starts the blob
// check of the manifest so recorded (base nil: the whole manifest); it
// runs while the manifest is recorded. If a command or the check fails
// after the deploy exists, the deploy is marked failed (best effort) so
// it is never mistaken for a complete one. It returns the check's
// outcome.
func (a *API) recordDeploy(ctx context.Context, proto atoll.Deploy, files []atoll.File, check func(*deployBase) <-chan blobCheck, publish bool) (atoll.Deploy, blobCheck, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), applyTimeout)
	defer cancel()
	base := a.planBase(proto.Site, files)
	checked := check(base)
	d, err := a.proposeDeploy(ctx, proto, len(files), base)
	if base != nil && errors.Is(err, atoll.ErrConflict) {
		// The base was pruned or replaced between the plan and the apply:
		// record the whole manifest, checked whole.
		a.log.Info("base deploy gone, recording the whole manifest", "site", proto.Site, "base", base.id, "err", err)
		base = nil
		checked = check(nil)
		d, err = a.proposeDeploy(ctx, proto, len(files), nil)
	}
	if err != nil {
		return atoll.Deploy{}, blobCheck{}, fmt.Errorf("create deploy: %w", err)
	}
	rest := files
	if base != nil {
		rest = base.add
	}
	batches := raft.BatchFiles(d.ID, rest)
	var c blobCheck
	done := false
	select {
	case c = <-checked:
		done = true
	default: // still asking the owners: record the manifest meanwhile
	}
	if done && c.err != nil {
		return a.abortDeploy(ctx, d.ID, c, "check stored blobs", c.err)
	}
	if done && len(c.missing) == 0 && len(batches) <= pipelineWindow && !publish {
		// The common small deploy: the manifest and MarkReady in one
		// replication round (idempotent commands; see applyPipelined).
		cmds := make([]raft.Command, 0, len(batches)+1)
		for _, b := range batches {
			cmds = append(cmds, b)
		}
		ready, err := a.readyCommand(ctx, d.ID, &c, ruleFilesOf(files))
		if err != nil {
			return a.abortDeploy(ctx, d.ID, c, "check rules", err)
		}
		cmds = append(cmds, ready)
		if err := a.applyPipelined(ctx, cmds); err != nil {
			return a.abortDeploy(ctx, d.ID, c, "record manifest", err)
		}
		d.Received, d.State, d.Bytes, d.Rules = len(files), atoll.StateReady, c.bytes, rulesHash(ready.Rules)
		return d, c, nil
	}
	if err := a.recordManifest(ctx, batches); err != nil {
		return a.abortDeploy(ctx, d.ID, c, "record manifest", err)
	}
	d.Received = len(files)
	if !done {
		if c = <-checked; c.err != nil {
			return a.abortDeploy(ctx, d.ID, c, "check stored blobs", c.err)
		}
	}
	if len(c.missing) > 0 {
		return d, c, nil
	}
	return a.completeDeploy(ctx, d, c, publish, ruleFilesOf(files))
}

// proposeDeploy applies CreateDeploy for a new deploy of proto.Site with n
// files (and proto.Message), from base when not nil, under a freshly drawn
// id, and returns the deploy as recorded.
func (a *API) proposeDeploy(ctx context.Context, proto atoll.Deploy, n int, base *deployBase) (atoll.Deploy, error) {
	site := proto.Site
	d := atoll.Deploy{Site: site, State: atoll.StateUploading, Created: time.Now().UTC(), Files: n, Message: proto.Message}
	cmd := raft.CreateDeploy{Site: site, Files: n, Created: d.Created, Message: d.Message}
	if base != nil {
		d.Base, d.Received = base.id, base.kept
		cmd.Base, cmd.Remove = base.id, base.removePaths()
	}
	maxUploading, err := a.maxUploadingFor(site)
	if err != nil {
		return d, err
	}
	cmd.MaxUploading = maxUploading
	for range 3 {
		// The FSM takes a CreateDeploy repeating an existing id, site, file
		// count and base for a retry and accepts it, so an id already in
		// use here is drawn again before proposing; one in use elsewhere
		// is ErrExists and drawn again too.
		if d.ID = newDeployID(); a.idInUse(d.ID) {
			continue
		}
		cmd.ID = d.ID
		err = a.meta.Apply(ctx, cmd)
		if !errors.Is(err, atoll.ErrExists) {
			break
		}
	}
	if errors.Is(err, atoll.ErrLimit) {
		err = tooManyUploading(site, maxUploading) // recorded by another API node meanwhile
	}
	return d, err
}

// recordManifest applies the manifest's batches, pipelineWindow at a time.
func (a *API) recordManifest(ctx context.Context, batches []raft.AddFiles) error {
	for len(batches) > 0 {
		n := min(len(batches), pipelineWindow)
		cmds := make([]raft.Command, n)
		for i, b := range batches[:n] {
			cmds[i] = b
		}
		if err := a.applyPipelined(ctx, cmds); err != nil {
			return err
		}
		batches = batches[n:]
	}
	return nil
}

// completeDeploy applies MarkReady for the complete deploy d, with its rule
// files f compiled, then Publish if asked.
func (a *API) completeDeploy(ctx context.Context, d atoll.Deploy, c blobCheck, publish bool, f ruleFiles) (atoll.Deploy, blobCheck, error) {
	ready, err := a.readyCommand(ctx, d.ID, &c, f)
	if err != nil {
		return a.abortDeploy(ctx, d.ID, c, "check rules", err)
	}
	if err := a.meta.Apply(ctx, ready); err != nil {
		return a.abortDeploy(ctx, d.ID, c, "mark ready", err)
	}
	d.State, d.Bytes, d.Rules = atoll.StateReady, c.bytes, rulesHash(ready.Rules)
	if publish {
		at := time.Now().UTC()
		if err := a.meta.Apply(ctx, raft.Publish{Deploy: d.ID, At: at}); err != nil {
			// The deploy is complete and stays ready: publishing it again is
			// a valid retry, so it is not marked failed.
			return atoll.Deploy{}, c, fmt.Errorf("deploy %s is ready but publishing failed: %w", d.ID, err)
		}
		d.State, d.PublishedAt = atoll.StatePublished, at
	}
	return d, c, nil
}

// abortDeploy marks deploy id failed (best effort: it is logged when even
// that fails) because step failed with err, and returns err.
func (a *API) abortDeploy(ctx context.Context, id string, c blobCheck, step string, err error) (atoll.Deploy, blobCheck, error) {
	a.failDeploy(ctx, id, fmt.Sprintf("%s: %v", step, err))
	return atoll.Deploy{}, c, fmt.Errorf("deploy %s: %s: %w", id, step, err)
}

// failDeploy marks deploy id failed for reason, best effort: a failure is
// logged. From the cluster's feature level that allows it, the deploy's
// manifest goes in the same command (raft.FailDeployCmd).
func (a *API) failDeploy(ctx context.Context, id, reason string) {
	if err := a.meta.Apply(ctx, raft.FailDeployCmd(a.meta.FeatureLevel(), id, reason)); err != nil {
		a.log.Warn("cannot mark deploy failed", "deploy", id, "err", err)
	}
}

func (a *API) listDeploys(w http.ResponseWriter, r *http.Request) {
	site, err := a.site(r.PathValue("site"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	deploys, err := a.meta.Deploys(site.Name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	list := atoll.DeployList{Deploys: make([]atoll.DeployResponse, 0, len(deploys))}
	for _, d := range deploys {
		list.Deploys = append(list.Deploys, a.deployResponse(d))
	}
	WriteJSON(w, http.StatusOK, list)
}

func (a *API) getDeploy(w http.ResponseWriter, r *http.Request) {
	d, err := a.deploy(r, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, a.deployResponse(d))
}

// finalize serves POST /v1/deploys/{id}/finalize: once every blob of the
// manifest is stored, the deploy becomes ready. Finalizing a deploy that is
// already ready (or published, or superseded) changes nothing.
func (a *API) finalize(w http.ResponseWriter, r *http.Request) {
	d, err := a.deploy(r, r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var warnings []string
	if d.State == atoll.StateUploading {
		if d, warnings, err = a.markReady(r.Context(), d); err != nil {
			a.fail(w, r, err)
			return
		}
	} else if err := usable(d); err != nil {
		a.fail(w, r, err)
		return
	}
	resp := a.deployResponse(d)
	resp.Warnings = warnings
	WriteJSON(w, http.StatusOK, resp)
}

// publish serves POST /v1/deploys/{id}/publish[?rollback=true]: it makes
// the deploy its site's live one. Publishing a deploy created before the
// live one is refused (409, lateBuild) unless rollback=true says it is
// the rollback it looks like. The
// blobs are checked every time, so a deploy whose content is gone is never
// put live (right after this node created the deploy, only the blobs its
// create step did not find: checkManifest).
func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	d, err := a.deploy(r, r.PathValue("id"))
	if err == nil {
		err = a.lateBuild(r, d)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var warnings []string
	if d.State == atoll.StateUploading {
		if ok := a.markReadyAndPublish(r.Context(), w, r, d); ok {
			return
		}
		d, warnings, err = a.markReady(r.Context(), d)
	} else if err = usable(d); err == nil {
		_, err = a.checkManifest(r.Context(), d)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	at := time.Now().UTC()
	if err := a.meta.Apply(r.Context(), raft.Publish{Deploy: d.ID, At: at}); err != nil {
		a.fail(w, r, err)
		return
	}
	if d.State != atoll.StatePublished { // publishing the live deploy again changes nothing
		d.State, d.PublishedAt = atoll.StatePublished, at
	}
	a.log.Info("deploy published", "site", d.Site, "deploy", d.ID)
	resp := a.deployResponse(d)
	resp.Warnings = warnings
	WriteJSON(w, http.StatusOK, resp)
}

// usable refuses deploys that can never go live.
func usable(d atoll.Deploy) error {
	if d.State == atoll.StateFailed {
		return errorf(http.StatusConflict, "deploy %s failed; create a new deploy", d.ID)
	}
	return nil
}

// markReady checks an uploading deploy's blobs, compiles its rule files and
// applies MarkReady. It returns the rules' warnings.
func (a *API) markReady(ctx context.Context, d atoll.Deploy) (atoll.Deploy, []string, error) {
	ready, warnings, err := a.checkedReady(ctx, d)
	if err != nil {
		return d, nil, err
	}
	if err := a.meta.Apply(ctx, ready); err != nil {
		// A concurrent finalize or publish may have won the race; that is
		// success too.
		if now, rerr := a.meta.Deploy(d.ID); rerr == nil && now.State != atoll.StateUploading && now.State != atoll.StateFailed {
			return now, warnings, nil
		}
		return d, nil, err
	}
	d.State, d.Bytes, d.Rules = atoll.StateReady, ready.Bytes, rulesHash(ready.Rules)
	return d, warnings, nil
}

// checkedReady checks an uploading deploy's blobs and returns its
// MarkReady, rules compiled, and the rules' warnings. Rules that are
// refused fail the deploy: they are in its manifest and cannot change.
func (a *API) checkedReady(ctx context.Context, d atoll.Deploy) (raft.MarkReady, []string, error) {
	total, err := a.checkManifest(ctx, d)
	if err != nil {
		return raft.MarkReady{}, nil, err
	}
	f, err := a.ruleFilesIn(d.ID)
	if err != nil {
		return raft.MarkReady{}, nil, err
	}
	c := blobCheck{bytes: total}
	ready, err := a.readyCommand(ctx, d.ID, &c, f)
	if errors.Is(err, atoll.ErrInvalid) {
		_, _, err = a.abortDeploy(ctx, d.ID, c, "check rules", err)
	}
	if err != nil {
		return raft.MarkReady{}, nil, err
	}
	return ready, c.rules.warnings, nil
}

// checkManifest stats every blob of d's manifest, or, when this node created
// d moments ago under the same membership, only the blobs its create step
// did not find stored (confirmed.go). It answers 409 with the missing
// hashes, or the deploy's total identity bytes; an uploading deploy over its
// site's byte limit is failed and answered 413 (checkBytes).
func (a *API) checkManifest(ctx context.Context, d atoll.Deploy) (int64, error) {
	if d.Received < d.Files {
		w := errorf(http.StatusServiceUnavailable,
			"deploy %s: only %d of %d manifest entries are on this node yet; retry in a moment", d.ID, d.Received, d.Files)
		return 0, w
	}
	// Files per distinct blob: a manifest of a million entries often names
	// far fewer blobs, and one string per entry would be the biggest
	// allocation of the whole publish.
	uses := make(map[string]int64)
	err := a.meta.Files(d.ID, func(f atoll.File) error {
		uses[f.Hash]++
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read manifest of %s: %w", d.ID, err)
	}
	hashes := make([]string, 0, len(uses))
	for h := range uses {
		hashes = append(hashes, h)
	}
	slices.Sort(hashes)
	ask, known := hashes, int64(0)
	if c, ok := a.confirmed.lookup(d.ID, a.membership()); ok {
		// Every hash of the manifest was either found stored at create
		// time (its files' bytes are in c.bytes) or is in c.missing.
		ask = make([]string, 0, len(c.missing))
		for _, h := range c.missing {
			if _, found := slices.BinarySearch(hashes, h); found {
				ask = append(ask, h)
			}
		}
		known = c.bytes
	}
	missing, sizes, err := a.statAll(ctx, ask)
	if err != nil {
		return 0, err
	}
	if len(missing) > 0 {
		e := errorf(http.StatusConflict, "deploy %s is missing %d of its %d blobs; upload them with PUT /v1/blobs/{hash}",
			d.ID, len(missing), len(hashes))
		e.body.Missing = missing
		return 0, e
	}
	total := known
	for h, n := range uses {
		total += n * sizes[h] // 0 for the hashes not asked: they are in known
	}
	if d.State == atoll.StateUploading {
		return total, a.checkBytes(ctx, d, total)
	}
	return total, nil
}

// statAll checks hashes (sorted, unique). It returns the ones not stored,
// in order, and the sizes of the others.
func (a *API) statAll(ctx context.Context, hashes []string) ([]string, map[string]int64, error) {
	stored, err := a.blobs.StatMany(ctx, hashes)
	if err != nil {
		return nil, nil, fmt.Errorf("check stored blobs: %w", err)
	}
	sizes := make(map[string]int64, len(stored))
	var missing []string
	for _, h := range hashes {
		if info, ok := stored[h]; ok {
			sizes[h] = info.Size
		} else {
			missing = append(missing, h)
		}
	}
	return missing, sizes, nil
}

func (a *API) idInUse(id string) bool {
	_, err := a.meta.Deploy(id)
	return !errors.Is(err, atoll.ErrNotFound)
}

// deploy reads a deploy for the caller of r, turning "not found" into a
// 404 that names it, and a deploy of another site than a deploy token's
// into a 403. Every /v1/deploys/{id} handler reads its deploy through here.
func (a *API) deploy(r *http.Request, id string) (atoll.Deploy, error) {
	if !atoll.ValidDeployID(id) {
		return atoll.Deploy{}, errorf(http.StatusNotFound, "deploy %q does not exist", id)
	}
	d, err := a.meta.Deploy(id)
	if errors.Is(err, atoll.ErrNotFound) {
		return atoll.Deploy{}, errorf(http.StatusNotFound, "deploy %q does not exist", id)
	}
	if err != nil {
		return atoll.Deploy{}, err
	}
	if c, _ := CallerFrom(r.Context()); !c.mayTouch(d.Site) {
		return atoll.Deploy{}, scopeError(c)
	}
	return d, nil
}

func (a *API) deployResponse(d atoll.Deploy) atoll.DeployResponse {
	return atoll.DeployResponse{Deploy: d, URL: a.url(d.Site), PreviewURL: a.url(d.ID + "--" + d.Site)}
}

// url is the edge URL of a host label under the cluster domain.
func (a *API) url(label string) string {
	if a.cfg.SiteURL == nil {
		return ""
	}
	host := label
	if a.cfg.Domain != "" {
		host += "." + a.cfg.Domain
	}
	return a.cfg.SiteURL(host)
}

// newDeployID draws a deploy id.
func newDeployID() string { return randomID(deployIDLen) }

// randomID draws n characters of [a-z0-9] from crypto/rand, without modulo
// bias.
func randomID(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	id := make([]byte, 0, n)
	var buf [32]byte
	for len(id) < n {
		rand.Read(buf[:]) // never fails (crypto/rand documents a crash instead)
		for _, b := range buf {
			if b < 252 && len(id) < n { // 252 = 7*36
				id = append(id, alphabet[b%36])
			}
		}
	}
	return string(id)
}

// deployMessage reads a create's ?message=, checked; a message needs the
// cluster at atoll.LevelFeatureLevels (an older node would drop it).
func (a *API) deployMessage(r *http.Request) (string, error) {
	m := r.URL.Query().Get("message")
	if m == "" {
		return "", nil
	}
	if err := atoll.CheckMessage(m); err != nil {
		return "", err
	}
	if a.cfg.RequireFeature != nil {
		if err := a.cfg.RequireFeature(r.Context(), "a deploy message", atoll.LevelFeatureLevels); err != nil {
			return "", err
		}
	}
	return m, nil
}

// lateBuild refuses to publish d while its site is locked, or over a live
// deploy created after it (a build that finished late would otherwise
// replace a newer one) unless the request says rollback=true. The checks
// read this node's state: the FSM refuses a publish to a locked site
// whatever the proposer saw, and two publishes racing each other are
// ordered by Raft.
func (a *API) lateBuild(r *http.Request, d atoll.Deploy) error {
	rollback := false
	if v := r.URL.Query().Get("rollback"); v != "" {
		var err error
		if rollback, err = strconv.ParseBool(v); err != nil {
			return errorf(http.StatusBadRequest, "rollback=%q: use rollback=true or rollback=false", v)
		}
	}
	s, err := a.meta.Site(d.Site)
	if err != nil || s.Published == "" || s.Published == d.ID {
		return notFoundIsNil(err)
	}
	if err := refuseLocked(s); err != nil || rollback {
		return err
	}
	live, err := a.meta.Deploy(s.Published)
	if err != nil || !d.Created.Before(live.Created) {
		return notFoundIsNil(err)
	}
	return errorf(http.StatusConflict,
		"deploy %s was created before the live deploy %s of site %s (%s < %s): publishing it would replace a newer build; "+
			"if that is what you want, roll back: atoll rollback --site %s %s (POST /v1/deploys/%s/publish?rollback=true)",
		d.ID, live.ID, d.Site, d.Created.Format(time.RFC3339), live.Created.Format(time.RFC3339), d.Site, d.ID, d.ID)
}

// notFoundIsNil drops an atoll.ErrNotFound: the thing went away meanwhile.
func notFoundIsNil(err error) error {
	if errors.Is(err, atoll.ErrNotFound) {
		return nil
	}
	return err
}
