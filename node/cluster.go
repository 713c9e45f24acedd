package node

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/atoll-hosting/atoll"

	"golang.org/x/sync/errgroup"

	"github.com/atoll-hosting/atoll/blobstore"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/placement"
	"github.com/atoll-hosting/atoll/raft"
)

// ErrNoLeader is returned when a write cannot reach a Raft leader in time.
var ErrNoLeader = errors.New("no raft leader reachable")

// watchState keeps the node's derived views (placement) current: it
// recomputes them after every change of the replicated state.
func (n *Node) watchState() {
	defer n.wg.Done()
	var lastNodes string
	for {
		changed := n.store.Changed()
		n.refreshPlacement()
		if n.cfg.Role == atoll.RoleEdge {
			n.prefetchPublished()
		}
		if key := n.placementKey(); key != lastNodes {
			if lastNodes != "" {
				n.membershipChanged()
			}
			lastNodes = key
		}
		select {
		case <-changed:
		case <-n.ctx.Done():
			return
		}
	}
}

// placementKey identifies the membership that placement depends on.
func (n *Node) placementKey() string {
	p := n.place.Load()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d", p.Replicas())
	for _, c := range p.Cores() {
		b.WriteString("," + c.ID)
	}
	return b.String()
}

func (n *Node) refreshPlacement() {
	nodes, err := n.store.Nodes()
	if err != nil {
		n.log.Error("read node table", "err", err)
		return
	}
	r := n.store.Replicas()
	if r == 0 {
		r = n.cfg.Replicas
	}
	n.place.Store(placement.New(nodes, r))
}

// placement returns the current placement view.
func (n *Node) placement() *placement.View { return n.place.Load() }

// nodeByID returns the node table entry of id.
func (n *Node) nodeByID(id string) (atoll.Node, bool) {
	for _, nd := range n.placement().All() {
		if nd.ID == id {
			return nd, true
		}
	}
	return atoll.Node{}, false
}

// apply replicates cmd through the leader: directly when this node leads,
// else forwarded to the leader's peer endpoint. While there is no leader
// (an election) it retries until ctx ends or 15 s pass; commands are
// idempotent, so a retry after an unknown outcome is safe. After a
// forwarded write it waits until this node has applied it, so that the
// caller reads its own write.
func (n *Node) apply(ctx context.Context, cmd raft.Command) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var last error
	for {
		index, err := n.applyOnce(ctx, cmd)
		if err == nil {
			if index > 0 {
				if err := n.store.WaitApplied(ctx, index); err != nil {
					return fmt.Errorf("wait for own write: %w", err)
				}
			}
			return nil
		}
		if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, ErrNoLeader) {
			return err
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", raft.ErrNotLeader, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// applyOnce makes one attempt; it returns the index to wait for when the
// command went through another node.
func (n *Node) applyOnce(ctx context.Context, cmd raft.Command) (uint64, error) {
	if n.store.IsLeader() {
		_, err := n.store.ApplyIndex(ctx, cmd)
		return 0, err
	}
	leader, ok := n.nodeByID(n.store.LeaderID())
	if !ok || leader.APIAddr == "" {
		return 0, fmt.Errorf("%w: leader %q not in the node table", ErrNoLeader, n.store.LeaderID())
	}
	data, err := raft.Encode(cmd)
	if err != nil {
		return 0, err
	}
	var out applyResponse
	if err := n.peerJSON(ctx, http.MethodPost, leader.APIAddr, "/v1/peer/apply", bytes.NewReader(data), &out); err != nil {
		var pe *peerError
		if errors.As(err, &pe) {
			return 0, pe.asRaftError()
		}
		return 0, fmt.Errorf("%w: forward to %s: %v", ErrNoLeader, leader.ID, err)
	}
	return out.Index, nil
}

type applyResponse struct {
	Index uint64 `json:"index"`
}

// applyErrorKinds names the raft sentinels on the wire, so a forwarded
// write's rejection keeps its meaning (404, 409, 400) on the forwarding
// node.
var applyErrorKinds = map[string]error{
	"not_found":  atoll.ErrNotFound,
	"exists":     atoll.ErrExists,
	"conflict":   atoll.ErrConflict,
	"invalid":    atoll.ErrInvalid,
	"not_leader": raft.ErrNotLeader,
	"unknown":    raft.ErrUnknownCommand,
}

func errorKind(err error) string {
	for k, s := range applyErrorKinds {
		if errors.Is(err, s) {
			return k
		}
	}
	return ""
}

// peerError is a non-2xx answer of a peer endpoint.
type peerError struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
	Kind    string `json:"kind,omitempty"`
}

func (e *peerError) Error() string { return fmt.Sprintf("peer answered %d: %s", e.Status, e.Message) }

// asRaftError turns a forwarded rejection back into the raft sentinel it
// was on the leader.
func (e *peerError) asRaftError() error {
	if s, ok := applyErrorKinds[e.Kind]; ok {
		return fmt.Errorf("%w: %s", s, e.Message)
	}
	return e
}

// peerJSON calls a peer endpoint at addr (host:port of its API) with the
// cluster key and decodes a JSON answer into out (if not nil).
func (n *Node) peerJSON(ctx context.Context, method, addr, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, n.peerURL(addr)+path, body)
	if err != nil {
		return err
	}
	req.Header.Set(blobstore.HeaderClusterKey, n.cfg.ClusterKey)
	resp, err := n.peerHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		pe := &peerError{Status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, pe) != nil || pe.Message == "" {
			pe.Message = string(bytes.TrimSpace(b))
		}
		return pe
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// requirePeer lets a request through only with the cluster key.
func (n *Node) requirePeer(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.cfg.ClusterKey == "" {
			builder.WriteError(w, http.StatusForbidden, "peer traffic is disabled on this node: start it with --cluster-key")
			return
		}
		if !n.peerCertOK(r) {
			refusePeerCert(w)
			return
		}
		if !n.clusterKeyOK(r) {
			builder.WriteError(w, http.StatusForbidden, "missing or wrong cluster key")
			return
		}
		next(w, r)
	})
}

func (n *Node) clusterKeyOK(r *http.Request) bool {
	got := r.Header.Get(blobstore.HeaderClusterKey)
	return n.cfg.ClusterKey != "" && subtle.ConstantTimeCompare([]byte(got), []byte(n.cfg.ClusterKey)) == 1
}

// handlePeerApply applies a command forwarded by another node. It must
// lead; the forwarding node retries elsewhere on not_leader.
func (n *Node) handlePeerApply(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(io.LimitReader(r.Body, raft.MaxCommandBytes+1))
	if err != nil {
		builder.WriteError(w, http.StatusBadRequest, "read command: "+err.Error())
		return
	}
	cmd, err := raft.Decode(data)
	if err != nil {
		writePeerError(w, http.StatusBadRequest, err)
		return
	}
	index, err := n.store.ApplyIndex(r.Context(), cmd)
	if err != nil {
		status := http.StatusConflict
		if errors.Is(err, raft.ErrNotLeader) {
			status = http.StatusServiceUnavailable
		} else if errorKind(err) == "" {
			status = http.StatusInternalServerError
		}
		writePeerError(w, status, err)
		return
	}
	builder.WriteJSON(w, http.StatusOK, applyResponse{Index: index})
}

func writePeerError(w http.ResponseWriter, status int, err error) {
	builder.WriteJSON(w, status, peerError{Message: err.Error(), Kind: errorKind(err)})
}

// prefetchPublished starts a background prefetch of every newly published
// deploy, so that an edge serves a fresh publish from its own disk.
func (n *Node) prefetchPublished() {
	sites, err := n.store.Sites()
	if err != nil {
		return
	}
	for _, s := range sites {
		if s.Published == "" || n.prefetched[s.Published] {
			continue
		}
		n.prefetched[s.Published] = true
		n.wg.Add(1)
		go func(id string) {
			defer n.wg.Done()
			n.prefetch(id)
		}(s.Published)
	}
}

// prefetch fetches the blobs of deploy id this node lacks, a few at a
// time, stopping when the cache would overflow.
func (n *Node) prefetch(id string) {
	var missing []string
	var bytes int64
	err := n.store.Files(id, func(f atoll.File) error {
		if !n.blobs.Has(f.Hash) {
			missing = append(missing, f.Hash)
		}
		return n.ctx.Err()
	})
	if err != nil || len(missing) == 0 {
		return
	}
	start := time.Now()
	var g errgroup.Group
	g.SetLimit(8)
	var mu sync.Mutex
	for _, h := range missing {
		g.Go(func() error {
			info, err := n.fetch(n.ctx, h)
			if err != nil {
				return nil // served by read-through later, or reported by repair
			}
			mu.Lock()
			defer mu.Unlock()
			bytes += info.Size
			if bytes > n.cfg.CacheSize {
				return errCacheFull
			}
			return nil
		})
	}
	if err := g.Wait(); errors.Is(err, errCacheFull) {
		n.log.Warn("prefetch stopped: deploy larger than the cache", "deploy", id, "cache_size", n.cfg.CacheSize)
	}
	n.log.Debug("prefetched deploy", "deploy", id, "blobs", len(missing), "took", time.Since(start))
}

var errCacheFull = errors.New("cache full")
