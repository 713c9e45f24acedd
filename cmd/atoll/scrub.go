package main

import (
	"context"
	"fmt"
	"time"

	"github.com/atoll-hosting/atoll"
)

// runNodeScrub handles `atoll node scrub ID [--no-wait]`: a scrub pass on
// one node now, with its progress on stderr and its counts on stdout. It
// fails when corrupt copies could not be replaced.
func runNodeScrub(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "node scrub", "node scrub ID [--no-wait]")
	noWait := fs.Bool("no-wait", false, "start the pass and return without waiting for it")
	pos, c, err := cf.parse(fs, args, 1, "ID")
	if err != nil {
		return err
	}
	st, err := c.ScrubNode(ctx, pos[0])
	if err != nil {
		return err
	}
	for st.Running && !*noWait {
		fmt.Fprintf(env.stderr, "scrubbing %s: %d blobs (%s) checked, %d corrupt\n", st.ID, st.Checked, humanBytes(st.Bytes), st.Corrupt)
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
		if st, err = c.ScrubStatus(ctx, pos[0]); err != nil {
			return err
		}
	}
	if st.Running {
		fmt.Fprintf(env.stdout, "node %s scrubbing: %s\n", st.ID, scrubCounts(st))
		return nil
	}
	fmt.Fprintf(env.stdout, "node %s scrubbed in %s: %s\n", st.ID, st.Finished.Sub(st.Started).Round(time.Millisecond), scrubCounts(st))
	switch {
	case st.Error != "":
		return fmt.Errorf("scrub of node %s stopped early: %s", st.ID, st.Error)
	case st.Corrupt > st.Repaired:
		return fmt.Errorf("node %s: %d corrupt blob copies could not be replaced (no healthy copy reachable); they are quarantined under its blobs/quarantine/",
			st.ID, st.Corrupt-st.Repaired)
	}
	return nil
}

func scrubCounts(st atoll.ScrubStatus) string {
	s := fmt.Sprintf("%d blobs (%s) checked, %d corrupt, %d repaired", st.Checked, humanBytes(st.Bytes), st.Corrupt, st.Repaired)
	if st.Unread > 0 {
		s += fmt.Sprintf(", %d unreadable", st.Unread)
	}
	return s
}
