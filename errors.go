package atoll

import "errors"

// Sentinel errors: why a request or command was refused. Every layer wraps
// them with detail (fmt.Errorf("%w ...")); callers test with errors.Is, and
// the API and the edge map them to 404, 409, 409, 400, 503 and 429.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
	// ErrUnavailable: the answer cannot be had right now but may be on a
	// retry (a store closing while the node shuts down).
	ErrUnavailable = errors.New("unavailable")
	// ErrLimit: a limit of the cluster or of a site is reached (a site's
	// deploys uploading at once, raft.CreateDeploy's MaxUploading).
	ErrLimit = errors.New("limit reached")
)
