package builder

import "time"

// ScrubStatus is the body of POST and GET /v1/nodes/{id}/scrub: a node's
// scrub pass, running or the last one, which re-reads every blob the node
// holds and checks it against its hash. A corrupt copy is quarantined (never
// served again) and replaced from another node; Corrupt - Repaired copies
// found corrupt could not be replaced (no healthy copy reachable).
type ScrubStatus struct {
	ID       string    `json:"id"`                 // the node
	Running  bool      `json:"running"`            // the pass has not finished
	Trigger  string    `json:"trigger,omitempty"`  // "background" or "request"; "" if no pass ran since the node started
	Started  time.Time `json:"started,omitzero"`   // when the pass began
	Finished time.Time `json:"finished,omitzero"`  // when it ended, zero while running
	Rate     int64     `json:"rate"`               // the read limit, bytes per second
	Checked  int       `json:"checked"`            // blobs verified so far
	Bytes    int64     `json:"bytes"`              // bytes read so far (identity and variants)
	Corrupt  int       `json:"corrupt"`            // copies found corrupt, and quarantined
	Repaired int       `json:"repaired"`           // of those, copies replaced by a healthy one
	Unread   int       `json:"unread"`             // blobs that could not be read (I/O errors other than corruption)
	Error    string    `json:"error,omitempty"`    // why the pass stopped early, if it did
	LastPass time.Time `json:"last_pass,omitzero"` // when the last complete pass ended (it schedules the next)
}
