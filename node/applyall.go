package node

import (
	"context"
	"errors"

	"github.com/atoll-hosting/atoll/raft"
)

// ApplyPipelined implements builder's pipelined apply: on the leader the
// commands go through raft.Store.ApplyAll (one log append and one
// replication round for all of them); elsewhere, or if leadership moved,
// they are applied one after the other through the leader, as Apply does.
func (m meta) ApplyPipelined(ctx context.Context, cmds []raft.Command) error {
	if m.n.store.IsLeader() {
		_, err := m.n.store.ApplyAll(ctx, cmds)
		if !errors.Is(err, raft.ErrNotLeader) {
			return err
		}
	}
	for _, cmd := range cmds {
		if err := m.n.apply(ctx, cmd); err != nil {
			return err
		}
	}
	return nil
}
