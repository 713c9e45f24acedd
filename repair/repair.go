package repair

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/placement"
)

// ErrConfig is returned by New for a Config it cannot run with.
var ErrConfig = errors.New("invalid repair configuration")

// passTimeout bounds one run of both halves.
const passTimeout = 30 * time.Minute

// Config is what a Repairer needs besides its dependencies.
type Config struct {
	Self     string        // this node's id
	Interval time.Duration // a pass this often besides on every membership change
	GCGrace  time.Duration // how long an unreferenced blob is kept
	// PullBatch bounds the hashes of one Peers.Pull: the peer protocol's
	// limit on one fetch request.
	PullBatch int
	Logger    *slog.Logger // nil: discard
}

// Meta is the replicated state as repair reads it (*raft.Store).
type Meta interface {
	Sites() ([]atoll.Site, error)
	Deploys(site string) ([]atoll.Deploy, error)
	Files(deployID string, fn func(atoll.File) error) error
	IsLeader() bool
	LeaderID() string
	// LeaderChanged returns a channel closed at the next change of leader
	// (raft.Store's): a node that takes office takes a census at once, so
	// that the cluster's health is known without waiting for Interval.
	LeaderChanged() <-chan struct{}
}

// Local is this node's blob store (*blobstore.Store).
type Local interface {
	// Walk calls fn with every stored blob.
	Walk(ctx context.Context, fn func(hash string) error) error
	Delete(hash string) error
}

// Peers are the calls to other nodes (or to this one, when nd is self).
type Peers interface {
	// Has returns the blobs among hashes that nd holds, with their sizes.
	Has(ctx context.Context, nd atoll.Node, hashes []string) (map[string]int64, error)
	// Push copies the local blob hash to nd, durably.
	Push(ctx context.Context, nd atoll.Node, hash string) error
	// Pull has nd fetch hashes from their holders (owners in placement
	// order, then any node) and returns how many arrived.
	Pull(ctx context.Context, nd atoll.Node, hashes []string) (int, error)
}

// Cache is the node's cache of copies it holds without owning them.
type Cache interface {
	// Confirm records that the owners of hash hold it: this node's copy
	// may be evicted.
	Confirm(hash string)
	// EvictSoon asks the cache to shrink to its size.
	EvictSoon()
}

// Repairer runs a node's repair passes.
type Repairer struct {
	cfg   Config
	log   *slog.Logger
	meta  Meta
	local Local
	peers Peers
	cache Cache
	view  func() *placement.View

	wake      chan struct{}
	drainLeft atomic.Int64 // referenced blobs held here, not yet confirmed on their owners; -1 unknown
	report    atomic.Pointer[atoll.RepairReport]

	unrefMu    sync.Mutex
	unrefSince map[string]time.Time // when a blob was first seen unreferenced
}

// New returns a Repairer; Run runs its passes. view returns the current
// placement.
func New(cfg Config, meta Meta, local Local, peers Peers, cache Cache, view func() *placement.View) (*Repairer, error) {
	if cfg.Interval <= 0 || cfg.GCGrace < 0 || cfg.PullBatch <= 0 {
		return nil, fmt.Errorf("%w: interval and pull batch must be positive, gc grace not negative", ErrConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Repairer{
		cfg: cfg, log: cfg.Logger, meta: meta, local: local, peers: peers, cache: cache, view: view,
		wake:       make(chan struct{}, 1),
		unrefSince: make(map[string]time.Time),
	}
	r.drainLeft.Store(-1)
	return r, nil
}

// Run runs a pass every Interval, when woken (Soon) and when this node
// takes office as leader, until ctx ends: the local pass on every node,
// the census on the leader. It skips passes while no leader is known.
func (r *Repairer) Run(ctx context.Context) {
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	leader := r.meta.LeaderChanged()
	if r.meta.IsLeader() {
		r.Soon() // took office before Run started (a bootstrap)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-r.wake:
		case <-leader:
			leader = r.meta.LeaderChanged()
			if !r.meta.IsLeader() {
				continue
			}
		}
		if r.meta.LeaderID() == "" {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, passTimeout)
		if err := r.LocalPass(pctx); err != nil && ctx.Err() == nil {
			r.log.Warn("repair: local pass", "err", err)
		}
		if r.meta.IsLeader() {
			if _, err := r.Census(pctx); err != nil && ctx.Err() == nil {
				r.log.Warn("repair: census", "err", err)
			}
		}
		cancel()
	}
}

// Soon wakes Run for a pass.
func (r *Repairer) Soon() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// MembershipChanged runs when the owners of blobs may have changed: the
// drain progress is unknown until the next pass, which starts soon.
func (r *Repairer) MembershipChanged() {
	r.drainLeft.Store(-1)
	r.Soon()
}

// DrainLeft is how many referenced blobs this node holds that its last
// local pass could not confirm on their owners; -1 before a pass since the
// last membership change.
func (r *Repairer) DrainLeft() int { return int(r.drainLeft.Load()) }

// LastReport is this node's last census, nil if it took none.
func (r *Repairer) LastReport() *atoll.RepairReport { return r.report.Load() }
