package raft

import (
	"context"

	hraft "github.com/hashicorp/raft"
)

// ApplyAll replicates cmds in order, pipelined: every command is handed to
// raft before the first one is waited for, so hashicorp/raft (BatchApplyCh)
// writes them in one log append, replicates them in one round and the FSM
// applies them in one bbolt transaction, instead of one fsync'd round per
// command. The FSM applies them in the order given, exactly as with one
// Apply after the other; but a command whose predecessor failed is applied
// anyway, so use it only for commands that fail harmlessly in that case
// (say, Publish of a deploy whose MarkReady failed is refused by the FSM).
//
// It returns the first error, in command order, and the index of the last
// command, like ApplyIndex. On a follower it fails with ErrNotLeader before
// proposing anything.
func (s *Store) ApplyAll(ctx context.Context, cmds []Command) (uint64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	data := make([][]byte, len(cmds))
	for i, cmd := range cmds {
		b, err := encodeBounded(cmd)
		if err != nil {
			return 0, err
		}
		data[i] = b
	}
	s.writes.RLock()
	defer s.writes.RUnlock()
	if !s.IsLeader() {
		return 0, s.notLeader(nil)
	}
	if err := s.storageFailed(); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	futs := make([]hraft.ApplyFuture, len(data))
	for i, b := range data {
		futs[i] = s.raft.Apply(b, timeLeft(ctx))
	}
	var (
		first error
		index uint64
	)
	for _, fut := range futs {
		if err := s.wait(ctx, fut); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		index = max(index, fut.Index())
		if resp, ok := fut.Response().(error); ok && first == nil {
			first = resp
		}
	}
	return index, first
}
