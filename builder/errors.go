package builder

import "errors"

// Errors a Blobs or Meta implementation may wrap for the API to answer
// with a fitting status (blobstore's and raft's sentinels are mapped too:
// see API.fail).
var (
	// ErrUnavailable: too few nodes could take part for the write to be
	// acknowledged (say, a blob reached fewer than a majority of its
	// owners). Answered 503 with Retry-After: the same call may succeed
	// once the nodes are back.
	ErrUnavailable = errors.New("not enough nodes available")
)
