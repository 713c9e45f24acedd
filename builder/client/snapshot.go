package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/internal/durable"
)

// CheckSnapshot reads a whole snapshot file and returns the Raft index its
// state stands at, or an error if the file is damaged, truncated or not a
// snapshot. The client does not link the store that writes snapshots; a
// caller that does passes its check (the atoll CLI passes one built on
// raft.VerifyBackup).
type CheckSnapshot func(r io.Reader) (appliedIndex uint64, err error)

// SnapshotInfo describes a snapshot saved from a node.
type SnapshotInfo struct {
	Node         string // the node whose state it is
	AppliedIndex uint64 // the Raft index that state reflects
	Bytes        int64  // size of the snapshot file
}

// SaveSnapshot streams a snapshot of the cluster's metadata, as the
// answering node holds it, into w. Needs the admin token. A stream the
// node broke off fails; use SaveSnapshotFile to also check the data.
func (c *Client) SaveSnapshot(ctx context.Context, w io.Writer) (SnapshotInfo, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/snapshot", nil)
	if err != nil {
		return SnapshotInfo{}, err
	}
	res, err := c.send(req)
	if err != nil {
		return SnapshotInfo{}, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return SnapshotInfo{}, decodeError(res)
	}
	info := SnapshotInfo{Node: res.Header.Get(atoll.HeaderNode)}
	if info.AppliedIndex, err = strconv.ParseUint(res.Header.Get(atoll.HeaderAppliedIndex), 10, 64); err != nil {
		return SnapshotInfo{}, fmt.Errorf("GET /v1/snapshot: answer without a valid %s header", atoll.HeaderAppliedIndex)
	}
	if info.Bytes, err = io.Copy(w, res.Body); err != nil {
		return SnapshotInfo{}, fmt.Errorf("GET /v1/snapshot: download broken off after %d bytes: %w", info.Bytes, err)
	}
	return info, nil
}

// SaveSnapshotFile saves a snapshot to path the way a backup must be
// written: into a temporary file next to it, checked with check when it is
// not nil (so a truncated or damaged download is never kept), fsynced,
// renamed over path and the directory fsynced. On failure path is left as
// it was.
func (c *Client) SaveSnapshotFile(ctx context.Context, path string, check CheckSnapshot) (info SnapshotInfo, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return SnapshotInfo{}, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if info, err = c.SaveSnapshot(ctx, f); err != nil {
		return SnapshotInfo{}, err
	}
	if check != nil {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return SnapshotInfo{}, err
		}
		got, err := check(f)
		if err != nil {
			return SnapshotInfo{}, fmt.Errorf("downloaded snapshot is damaged, not saved: %w", err)
		}
		if got != info.AppliedIndex {
			return SnapshotInfo{}, fmt.Errorf("downloaded snapshot is at index %d, the node announced %d: not saved", got, info.AppliedIndex)
		}
	}
	if err := durable.Commit(f, path); err != nil {
		return SnapshotInfo{}, err
	}
	return info, nil
}

// RestoreSnapshot replaces the whole cluster's metadata with a snapshot
// made by SaveSnapshot (size bytes read from r). It runs on the leader
// (the node proxies it there) and returns once a majority of the cluster
// holds the restored state. Needs the admin token. A file that is not a
// whole, valid snapshot is refused (*Error with Status 400) and nothing
// changes.
func (c *Client) RestoreSnapshot(ctx context.Context, r io.ReadSeeker, size int64) (atoll.SnapshotRestored, error) {
	req, err := c.newRequest(ctx, http.MethodPost, "/v1/snapshot/restore", io.NopCloser(r))
	if err != nil {
		return atoll.SnapshotRestored{}, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", atoll.SnapshotContentType)
	req.GetBody = func() (io.ReadCloser, error) { // nothing was sent: see send
		_, err := r.Seek(0, io.SeekStart)
		return io.NopCloser(r), err
	}
	var out atoll.SnapshotRestored
	err = c.do(req, &out)
	return out, err
}

// RestoreSnapshotFile checks the snapshot file at path with check, when it
// is not nil (without uploading it; the leader checks it again in any
// case), and then restores it with RestoreSnapshot. A file check refuses
// is an error wrapping atoll.ErrInvalid.
func (c *Client) RestoreSnapshotFile(ctx context.Context, path string, check CheckSnapshot) (atoll.SnapshotRestored, error) {
	f, err := os.Open(path)
	if err != nil {
		return atoll.SnapshotRestored{}, err
	}
	defer f.Close()
	if check != nil {
		if _, err := check(f); err != nil {
			if errors.Is(err, atoll.ErrInvalid) {
				return atoll.SnapshotRestored{}, fmt.Errorf("%s is not a usable Atoll snapshot, nothing restored: %w", path, err)
			}
			return atoll.SnapshotRestored{}, fmt.Errorf("read %s: %w", path, err)
		}
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return atoll.SnapshotRestored{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return atoll.SnapshotRestored{}, err
	}
	return c.RestoreSnapshot(ctx, f, size)
}
