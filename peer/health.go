package peer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// ErrDown wraps the error of a call not sent because its peer is marked
// down (Health); it also wraps ErrUnreachable.
var ErrDown = errors.New("peer marked down")

// Health is a Client's view of which peers answer. A peer starts up; a
// call to it that gets no answer (ErrUnreachable: it could not be dialled,
// or the call's ctx deadline passed before its answer) marks it down, and
// from then on every call to it fails at once with ErrDown, without
// waiting for another timeout. A down peer is probed in the background
// (Probe, bounded by Timeout), 50 ms after it was marked down and then
// after waits that double up to Interval; the first answer marks it up
// again. A call whose ctx was cancelled by its caller says nothing of the
// peer and changes nothing.
//
// The states, by peer (the host:port the calls go to):
//
//	up   --call unanswered-->  down (a prober starts)
//	down --probe answered-->   up   (the prober ends)
//	down --Close-->            the prober ends; the peer stays down
//
// A Health is safe for concurrent use; the zero value is not: use
// NewHealth.
type Health struct {
	cfg HealthConfig

	mu     sync.Mutex
	down   map[string]time.Time // host -> since when
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// HealthConfig configures a Health.
type HealthConfig struct {
	// Probe asks the peer at baseURL ("http://host:port") whether it
	// answers; nil means it does. Client.Ping is the usual one.
	Probe func(ctx context.Context, baseURL string) error
	// Interval is the longest wait between two probes of a down peer
	// (the first comes sooner, see firstProbe); Timeout bounds one probe.
	Interval, Timeout time.Duration
	// OnChange, if not nil, is called (outside any lock) when a peer is
	// marked down or up again, with why it went down.
	OnChange func(host string, up bool, why error)
}

// DefaultHealthConfig probes a down peer at most 500 ms apart (50, 100,
// 200, 400 ms, then every 500 ms), each probe bounded by 1 s. Probe is
// left to the caller.
func DefaultHealthConfig() HealthConfig {
	return HealthConfig{Interval: 500 * time.Millisecond, Timeout: time.Second}
}

// NewHealth returns a Health in which every peer is up.
func NewHealth(cfg HealthConfig) (*Health, error) {
	if cfg.Probe == nil || cfg.Interval <= 0 || cfg.Timeout <= 0 {
		return nil, errors.New("peer health: want a probe, a positive interval and timeout")
	}
	return &Health{cfg: cfg, down: map[string]time.Time{}, stop: make(chan struct{})}, nil
}

// Down reports whether calls to host are skipped, and since when.
func (h *Health) Down(host string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	since, ok := h.down[host]
	return since, ok
}

// DownHosts returns the hosts marked down.
func (h *Health) DownHosts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.down))
	for host := range h.down {
		out = append(out, host)
	}
	return out
}

// Observe records the outcome of a call to baseURL's host made with ctx:
// err wrapping ErrUnreachable (and not ErrDown) marks the host down unless
// ctx was cancelled by its caller. Other outcomes change nothing: a peer
// that answers, even with an error, is up, and only a probe marks a down
// peer up.
func (h *Health) Observe(ctx context.Context, scheme, host string, err error) {
	if err == nil || !errors.Is(err, ErrUnreachable) || errors.Is(err, ErrDown) || errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	h.markDown(scheme, host, err)
}

func (h *Health) markDown(scheme, host string, why error) {
	h.mu.Lock()
	if _, ok := h.down[host]; ok || h.closed {
		h.mu.Unlock()
		return
	}
	h.down[host] = time.Now()
	h.wg.Add(1)
	h.mu.Unlock()
	if h.cfg.OnChange != nil {
		h.cfg.OnChange(host, false, why)
	}
	go h.probe(scheme, host)
}

// firstProbe is how soon a peer marked down is probed first: a node that
// restarts answers again within moments, and until a probe answers its
// peers skip it (with another owner down, an upload then lacks its
// majority). The waits then double up to Interval.
const firstProbe = 50 * time.Millisecond

// probe probes a down peer until it answers or Close: after firstProbe
// (or Interval, if shorter), then after waits that double up to Interval.
func (h *Health) probe(scheme, host string) {
	defer h.wg.Done()
	baseURL := scheme + "://" + host
	wait := min(firstProbe, h.cfg.Interval)
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Timeout)
		err := h.cfg.Probe(ctx, baseURL)
		cancel()
		if err == nil {
			h.mu.Lock()
			delete(h.down, host)
			h.mu.Unlock()
			if h.cfg.OnChange != nil {
				h.cfg.OnChange(host, true, nil)
			}
			return
		}
		wait = min(2*wait, h.cfg.Interval)
		t.Reset(wait)
	}
}

// Close stops the probers and waits for them. A nil Health is closed.
func (h *Health) Close() {
	if h == nil {
		return
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.stop)
	h.mu.Unlock()
	h.wg.Wait()
}

// unchecked marks a ctx whose calls Health neither skips nor observes.
type unchecked struct{}

// skip returns the error of a call to host that is not sent because host
// is down, or nil.
func (h *Health) skip(host string) error {
	if h == nil {
		return nil
	}
	if since, down := h.Down(host); down {
		return fmt.Errorf("%w: %w: %s has not answered since %s; probing it in the background", ErrUnreachable, ErrDown, host, since.UTC().Format(time.TimeOnly))
	}
	return nil
}

// Ping asks the peer at baseURL whether it answers: any HTTP answer to a
// GET of /healthz counts, whatever its status. It never consults Health:
// it is Health's probe.
func (c *Client) Ping(ctx context.Context, baseURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint(baseURL, "/healthz"), nil)
	if err != nil {
		return err
	}
	resp, err := c.blobs().Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	drainClose(resp.Body)
	return nil
}
