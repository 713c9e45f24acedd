package atoll

import "errors"

// Sentinel errors: why a request or command was refused. Every layer wraps
// them with detail (fmt.Errorf("%w ...")); callers test with errors.Is, and
// the API maps them to 404, 409, 409 and 400.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)
