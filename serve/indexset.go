package serve

import (
	"cmp"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/atoll-hosting/atoll"
)

// indexSet decides which large deploys have an index (index.go), builds
// them and drops them. Requests only ever load a slot's index pointer; the
// set's lock is taken once per large deploy per generation (slotFor) and by
// its one background goroutine.
type indexSet struct {
	cat    Catalog
	scan   ManifestScanner
	budget int64
	min    int // deploys with more entries than this get a slot (IndexMinEntries)
	stats  *Stats
	log    *slog.Logger

	count atomic.Int32 // len(slots), read by generation without the lock

	mu      sync.Mutex
	idle    *sync.Cond // signalled when the goroutine stops (tests wait on it)
	slots   map[string]*indexSlot
	running bool // the check goroutine runs
	again   bool // a change came while it ran
}

// indexSlot is what the set knows of one large deploy that was requested.
type indexSlot struct {
	id      string
	entries int
	ix      atomic.Pointer[deployIndex] // nil: requests read the Catalog

	// Guarded by indexSet.mu.
	live   bool  // the deploy is published, as of the last check
	bytes  int64 // the index's size once built (kept after a drop); 0 before
	failed bool  // building failed for a reason other than the deploy going away: not retried
}

// newIndexes returns the index set of a Handler configured with cfg, or
// nil when cfg disables indexes or cat cannot hand out manifests.
func newIndexes(cfg Config, cat Catalog, log *slog.Logger) *indexSet {
	sc, ok := cat.(ManifestScanner)
	if !ok || cfg.IndexBytes < 0 {
		return nil
	}
	budget := cfg.IndexBytes
	if budget == 0 {
		budget = DefaultIndexBytes
	}
	s := newIndexSet(cat, sc, budget, cfg.Stats, log)
	if cfg.IndexMinEntries > 0 {
		s.min = cfg.IndexMinEntries
	}
	return s
}

func newIndexSet(cat Catalog, scan ManifestScanner, budget int64, stats *Stats, log *slog.Logger) *indexSet {
	s := &indexSet{cat: cat, scan: scan, budget: budget, min: IndexMinEntries, stats: stats, log: log,
		slots: map[string]*indexSlot{}}
	s.idle = sync.NewCond(&s.mu)
	return s
}

// slotFor returns the slot of target t, or nil (no lock, nothing kept) for
// a deploy that never gets an index: up to min entries, or with site rules
// (whose answers are cached per request path, in the path table).
func (s *indexSet) slotFor(t target) *indexSlot {
	if s == nil || t.files <= s.min || t.rules != "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := s.slots[t.id]
	if sl == nil {
		sl = &indexSlot{id: t.id, entries: t.files}
		s.slots[t.id] = sl
		s.count.Store(int32(len(s.slots)))
		s.kickLocked()
	}
	return sl
}

// changed tells the set that the Catalog changed: a deploy may have stopped
// being live, or become live.
func (s *indexSet) changed() {
	if s == nil || s.count.Load() == 0 {
		return
	}
	s.mu.Lock()
	s.kickLocked()
	s.mu.Unlock()
}

func (s *indexSet) kickLocked() {
	if s.running {
		s.again = true
		return
	}
	s.running = true
	go s.run()
}

// run checks the slots until no change came during the last check.
func (s *indexSet) run() {
	for {
		s.check()
		s.mu.Lock()
		if !s.again {
			s.running = false
			s.idle.Broadcast()
			s.mu.Unlock()
			return
		}
		s.again = false
		s.mu.Unlock()
	}
}

// wait returns once no check is running (tests).
func (s *indexSet) wait() {
	if s == nil {
		return
	}
	s.mu.Lock()
	for s.running {
		s.idle.Wait()
	}
	s.mu.Unlock()
}

// check reads whether each slot's deploy is live, drops the indexes the
// plan does not keep, and builds those it keeps that are missing.
func (s *indexSet) check() {
	s.mu.Lock()
	ids := make([]string, 0, len(s.slots))
	for id := range s.slots {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	live := make(map[string]bool, len(ids)) // absent: unknown (a read failed)
	var gone []string
	for _, id := range ids {
		d, err := s.cat.Deploy(id)
		switch {
		case errors.Is(err, atoll.ErrNotFound):
			gone = append(gone, id)
		case err != nil:
			s.log.Error("check deploy index", "deploy", id, "err", err)
		default:
			live[id] = d.State == atoll.StatePublished
		}
	}
	s.mu.Lock()
	for _, id := range gone {
		if sl := s.slots[id]; sl != nil {
			sl.ix.Store(nil)
			delete(s.slots, id)
		}
	}
	for id, l := range live {
		if sl := s.slots[id]; sl != nil {
			sl.live = l
		}
	}
	s.count.Store(int32(len(s.slots)))
	build := s.applyPlanLocked()
	s.reportLocked()
	s.mu.Unlock()
	for _, sl := range build {
		s.build(sl)
	}
}

// applyPlanLocked drops the indexes the plan does not keep and returns the
// slots it keeps that have none yet, most entries first.
func (s *indexSet) applyPlanLocked() []*indexSlot {
	all := make([]*indexSlot, 0, len(s.slots))
	for _, sl := range s.slots {
		all = append(all, sl)
	}
	keep := planIndexes(all, s.budget)
	var build []*indexSlot
	for _, sl := range all {
		switch {
		case !keep[sl] && sl.ix.Load() != nil:
			sl.ix.Store(nil)
			s.log.Info("deploy index dropped", "deploy", sl.id, "entries", sl.entries, "live", sl.live)
		case keep[sl] && sl.ix.Load() == nil:
			build = append(build, sl)
		}
	}
	slices.SortFunc(build, bySize)
	return build
}

// planIndexes chooses the slots that get an index: live ones, most entries
// first, as long as they fit in budget together (a slot that does not fit
// is passed over for smaller ones). A slot counts its real size once built,
// its planned size before.
func planIndexes(slots []*indexSlot, budget int64) map[*indexSlot]bool {
	cands := slices.Clone(slots)
	slices.SortFunc(cands, bySize)
	keep := map[*indexSlot]bool{}
	var used int64
	for _, sl := range cands {
		if !sl.live || sl.failed {
			continue
		}
		need := sl.bytes
		if need == 0 {
			need = indexBytesFor(sl.entries)
		}
		if used+need <= budget {
			keep[sl] = true
			used += need
		}
	}
	return keep
}

func bySize(a, b *indexSlot) int {
	if c := cmp.Compare(b.entries, a.entries); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// build makes sl's index and installs it. With its real size known, the
// plan may pass over it, or over smaller ones, which are then dropped.
func (s *indexSet) build(sl *indexSlot) {
	t0 := time.Now()
	ix, err := buildIndex(s.scan, sl.id, sl.entries)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case errors.Is(err, atoll.ErrNotFound):
		return // deleted meanwhile: the next check forgets it
	case err != nil:
		sl.failed = true
		s.log.Error("build deploy index", "deploy", sl.id, "err", err)
		return
	}
	sl.bytes = ix.bytes
	sl.ix.Store(ix)
	s.log.Info("deploy index built", "deploy", sl.id, "entries", ix.count, "bytes", ix.bytes,
		"duration", time.Since(t0).Round(time.Millisecond))
	// With its real size, the plan may pass over it or smaller ones.
	var built []*indexSlot
	for _, other := range s.slots {
		if other.ix.Load() != nil {
			built = append(built, other)
		}
	}
	keep := planIndexes(built, s.budget)
	for _, other := range built {
		if !keep[other] {
			other.ix.Store(nil)
			s.log.Info("deploy index dropped: over budget", "deploy", other.id, "entries", other.entries, "bytes", other.bytes)
		}
	}
	s.reportLocked()
}

// reportLocked publishes the number and size of the indexes held to Stats.
func (s *indexSet) reportLocked() {
	if s.stats == nil {
		return
	}
	var n, b int64
	for _, sl := range s.slots {
		if ix := sl.ix.Load(); ix != nil {
			n++
			b += ix.bytes
		}
	}
	s.stats.index.deploys.Store(n)
	s.stats.index.bytes.Store(b)
}

// indexStats are the gauges of the deploy indexes held, for Stats.
type indexStats struct {
	deploys, bytes         atomic.Int64
	descDeploys, descBytes *prometheus.Desc
}

func newIndexStats() indexStats {
	return indexStats{
		descDeploys: prometheus.NewDesc("atoll_edge_index_deploys", "Large live deploys whose manifest the edge holds in memory (an index).", nil, nil),
		descBytes:   prometheus.NewDesc("atoll_edge_index_bytes", "Memory held by the edge's deploy indexes, within --edge-index-memory.", nil, nil),
	}
}

func (x *indexStats) collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(x.descDeploys, prometheus.GaugeValue, float64(x.deploys.Load()))
	ch <- prometheus.MustNewConstMetric(x.descBytes, prometheus.GaugeValue, float64(x.bytes.Load()))
}
