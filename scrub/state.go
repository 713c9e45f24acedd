package scrub

import (
	"encoding/json"
	"errors"
	"os"
	"time"

	"github.com/atoll-hosting/atoll/internal/durable"
)

// state is what Config.StateFile (scrub.json) keeps across restarts. Its
// JSON is an on-disk format: fields are only ever added.
type state struct {
	LastPass time.Time `json:"last_pass"`        // end of the last complete pass
	Cursor   string    `json:"cursor,omitempty"` // last blob an unfinished background pass checked
}

// loadState reads the state file. A node without one (first start) counts
// its blobs as checked now: they were verified when they arrived.
func (s *Scrubber) loadState() state {
	var st state
	b, err := os.ReadFile(s.cfg.StateFile)
	if err == nil && json.Unmarshal(b, &st) == nil && !st.LastPass.IsZero() {
		return st
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("scrub: read schedule; starting a new one", "err", err)
	}
	st = state{LastPass: time.Now().UTC()}
	s.saveState(st)
	return st
}

func (s *Scrubber) saveState(st state) {
	b, _ := json.Marshal(st)
	if err := durable.WriteFile(s.cfg.StateFile, append(b, '\n'), 0o640); err != nil {
		s.log.Warn("scrub: save schedule", "err", err)
	}
}
