package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/atoll-hosting/atoll/builder"
)

// runStatus handles `atoll status [--wait D]`.
func runStatus(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "status", "status [--wait DURATION]")
	wait := fs.Duration("wait", 0, "keep asking until the node is ready, up to this long")
	cf.register(fs)
	if _, err := parseArgs(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if *wait > 0 { // before the client: a starting node may not have written its token yet
		if err := waitReady(ctx, cf.api, *wait); err != nil {
			return err
		}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "node:     %s (%s, %s)\nleader:   %s\napplied:  %d (commit %d)\nsites:    %d\nversion:  %s\n\n",
		st.ID, st.Role, st.RaftState, orDash(st.LeaderID), st.AppliedIndex, st.CommitIndex, st.Sites, st.Version)
	return printNodes(env, st.Nodes)
}

// waitReady polls the node's /readyz until it answers 200 or d passes.
func waitReady(ctx context.Context, api string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	url := normalizeAPI(api) + "/readyz"
	last := errors.New("no answer")
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("readyz answered %s", resp.Status)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node at %s not ready after %s: %v", api, d, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// runNode handles `atoll node list`.
func runNode(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: atoll node list", errUsage)
	}
	var cf clientFlags
	switch sub, rest := args[0], args[1:]; sub {
	case "list":
		fs := newFlagSet(env, "node list", "node list")
		_, c, err := cf.parse(fs, rest, 0, "no arguments")
		if err != nil {
			return err
		}
		nodes, err := c.Nodes(ctx)
		if err != nil {
			return err
		}
		return printNodes(env, nodes)
	default:
		return fmt.Errorf("%w: unknown node command %q", errUsage, sub)
	}
}

func printNodes(env *cliEnv, nodes []builder.NodeStatus) error {
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tSTATE\tRAFT\tLAST CONTACT\tBLOBS\tBYTES\tAPI")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", n.ID, n.Role, n.State, orDash(n.RaftState),
			orDash(n.LastContact), n.Blobs, humanBytes(n.Bytes), n.APIAddr)
	}
	return tw.Flush()
}
