package node

import (
	"slices"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
)

func TestExpired(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ds := []atoll.Deploy{
		{ID: "old-uploading", State: atoll.StateUploading, Created: now.Add(-2 * time.Hour)},
		{ID: "just-expired", State: atoll.StateUploading, Created: now.Add(-time.Hour)},
		{ID: "young-uploading", State: atoll.StateUploading, Created: now.Add(-59 * time.Minute)},
		{ID: "old-ready", State: atoll.StateReady, Created: now.Add(-2 * time.Hour)},
		{ID: "old-published", State: atoll.StatePublished, Created: now.Add(-2 * time.Hour)},
		{ID: "old-failed", State: atoll.StateFailed, Created: now.Add(-2 * time.Hour)},
	}
	var got []string
	for _, d := range expired(ds, now, time.Hour) {
		got = append(got, d.ID)
	}
	if want := []string{"old-uploading", "just-expired"}; !slices.Equal(got, want) {
		t.Errorf("expired = %v, want %v", got, want)
	}
}

func TestExpireInterval(t *testing.T) {
	for _, tc := range []struct{ expiry, want time.Duration }{
		{time.Second, time.Second},
		{8 * time.Second, 2 * time.Second},
		{time.Hour, time.Minute},
	} {
		if got := expireInterval(tc.expiry); got != tc.want {
			t.Errorf("expireInterval(%s) = %s, want %s", tc.expiry, got, tc.want)
		}
	}
}

func TestHeldFailed(t *testing.T) {
	ds := []atoll.Deploy{
		{ID: "failed-with-files", State: atoll.StateFailed, Received: 3, Files: 5},
		{ID: "failed-emptied", State: atoll.StateFailed, Received: 0, Files: 5},
		{ID: "uploading", State: atoll.StateUploading, Received: 3, Files: 5},
		{ID: "ready", State: atoll.StateReady, Received: 5, Files: 5},
	}
	var got []string
	for _, d := range heldFailed(ds) {
		got = append(got, d.ID)
	}
	if want := []string{"failed-with-files"}; !slices.Equal(got, want) {
		t.Errorf("heldFailed = %v, want %v", got, want)
	}
}
