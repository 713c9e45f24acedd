package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/atoll-hosting/atoll"
)

// runStatus handles `atoll status [--wait D]`.
func runStatus(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "status", "status [--wait DURATION]")
	wait := fs.Duration("wait", 0, "keep asking until the node is ready, up to this long")
	if _, err := cf.parseFlags(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if *wait > 0 { // before the client: a starting node may not have written its token yet
		if err := waitReady(ctx, &cf, *wait); err != nil {
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
	fmt.Fprintf(env.stdout, "node:     %s (%s, %s)\nleader:   %s\napplied:  %d (commit %d)\nsites:    %d\nreplicas: %d\nversion:  %s\n",
		st.ID, st.Role, st.RaftState, orDash(st.LeaderID), st.AppliedIndex, st.CommitIndex, st.Sites, st.Replicas, st.Version)
	if st.CompressPending > 0 {
		fmt.Fprintf(env.stdout, "compress: %d blobs waiting for their compressed variants (served uncompressed meanwhile)\n", st.CompressPending)
	}
	if r := st.Repair; r != nil {
		fmt.Fprintf(env.stdout, "repair:   %d blobs referenced, %d under-replicated, %d missing (census %s ago, took %s)\n",
			r.Referenced, r.UnderReplicated, r.Missing, time.Since(r.At).Round(time.Second), r.Took)
	}
	fmt.Fprintln(env.stdout)
	return printNodes(env, st.Nodes)
}

// waitReady polls the node's /readyz until it answers 200 or d passes.
func waitReady(ctx context.Context, cf *clientFlags, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	api := cf.api
	hc, err := cf.httpClient()
	if err != nil {
		return err
	}
	url := strings.Split(normalizeAPI(api), ",")[0] + "/readyz"
	last := errors.New("no answer")
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("readyz answered %s", resp.Status)
		} else {
			last = err
		}
		if sleep(ctx, 100*time.Millisecond) != nil {
			return fmt.Errorf("node at %s not ready after %s: %v", api, d, last)
		}
	}
}

// sleep waits d, or until ctx is done and then returns its error.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// runNode handles `atoll node list|join|drain|remove|scrub`.
func runNode(ctx context.Context, env *cliEnv, args []string) error {
	return runGroup(ctx, env, "node", args,
		subcommand{"list", runNodeList},
		subcommand{"join", runNodeJoin},
		subcommand{"drain", runNodeDrain},
		subcommand{"remove", runNodeRemove},
		subcommand{"scrub", runNodeScrub}) // scrub.go
}

// runNodeList handles `atoll node list`.
func runNodeList(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "node list", "node list")
	_, c, err := cf.parse(fs, args, 0, "no arguments")
	if err != nil {
		return err
	}
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return err
	}
	return printNodes(env, nodes)
}

// runNodeJoin handles `atoll node join ID --raft-addr A --api-addr B
// [--http-addr C] [--role edge]`.
func runNodeJoin(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "node join", "node join ID --raft-addr A --api-addr B [--http-addr C] [--role edge]")
	var req atoll.JoinRequest
	fs.StringVar(&req.RaftAddr, "raft-addr", "", "the node's Raft address (required)")
	fs.StringVar(&req.APIAddr, "api-addr", "", "the node's API address (required)")
	fs.StringVar(&req.HTTPAddr, "http-addr", "", "the node's edge address")
	fs.StringVar(&req.Role, "role", "core", "core or edge")
	pos, c, err := cf.parse(fs, args, 1, "ID")
	if err != nil {
		return err
	}
	req.ID = pos[0]
	nd, err := c.JoinNode(ctx, req)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "node %s joined as %s (%s)\n", nd.ID, nd.Role, nd.Suffrage)
	return nil
}

// runNodeDrain handles `atoll node drain ID [--no-wait]`, with its
// progress on stderr until the node's blobs are on their new owners.
func runNodeDrain(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "node drain", "node drain ID [--no-wait]")
	noWait := fs.Bool("no-wait", false, "start the drain and return without waiting for it")
	pos, c, err := cf.parse(fs, args, 1, "ID")
	if err != nil {
		return err
	}
	st, err := c.DrainNode(ctx, pos[0])
	if err != nil {
		return err
	}
	for !st.Done && !*noWait {
		if st.Left >= 0 {
			fmt.Fprintf(env.stderr, "draining %s: %d blobs left to hand over\n", st.ID, st.Left)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
		if st, err = c.DrainStatus(ctx, pos[0]); err != nil {
			return err
		}
	}
	if st.Done {
		fmt.Fprintf(env.stdout, "node %s drained: its blobs are on their new owners; 'atoll node remove %s' is safe\n", st.ID, st.ID)
	} else {
		fmt.Fprintf(env.stdout, "node %s draining\n", st.ID)
	}
	return nil
}

// runNodeRemove handles `atoll node remove ID [--force]`.
func runNodeRemove(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "node remove", "node remove ID [--force]")
	force := fs.Bool("force", false, "remove even if the node may hold the last copy of some blobs")
	pos, c, err := cf.parse(fs, args, 1, "ID")
	if err != nil {
		return err
	}
	if _, err := c.RemoveNode(ctx, pos[0], *force); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "node %s removed\n", pos[0])
	return nil
}

func printNodes(env *cliEnv, nodes []atoll.NodeStatus) error {
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tSTATE\tRAFT\tLAST CONTACT\tBLOBS\tBYTES\tAPI")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", n.ID, n.Role, n.State, orDash(n.RaftState),
			orDash(n.LastContact), n.Blobs, humanBytes(n.Bytes), n.APIAddr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range nodes {
		if n.DiskLow != "" {
			fmt.Fprintf(env.stdout, "%s: disk low, new blobs go to other nodes: %s\n", n.ID, n.DiskLow)
		}
	}
	return nil
}
