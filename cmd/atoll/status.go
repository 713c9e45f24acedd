package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/builder/client"
)

// runStatus handles `atoll status [--wait D] [--quiet] [--max-lag N]`. It
// prints the status with one line per problem it finds (see diagnose) and
// fails when there is any, so a script or a monitor can run it as a check.
func runStatus(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "status", "status [--wait DURATION] [--quiet] [--max-lag N] [-o json]")
	wait := fs.Duration("wait", 0, "keep asking until the node is ready and the first census is in, up to this long")
	quiet := fs.Bool("quiet", false, "print only the problems, one a line, and nothing when there is none")
	maxLag := fs.Int64("max-lag", 10, "entries a node may stay behind the leader's commit index")
	output := outputFlag(fs)
	if _, err := cf.parseFlags(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	asJSON, err := jsonOutput(*output)
	if err != nil {
		return err
	}
	if err := checkRange(fs, "max-lag", *maxLag >= 0, "0 or more entries"); err != nil {
		return err
	}
	deadline := time.Now().Add(*wait)
	if *wait > 0 { // before the client: a starting node may not have written its token yet
		if err := waitReady(ctx, &cf, *wait); err != nil {
			return err
		}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	first, err := firstCensus(ctx, c, deadline)
	if err != nil {
		return err
	}
	st, before := &first, (*atoll.Status)(nil)
	if behind(st, *maxLag) {
		// A follower may be behind for the moment an entry takes to reach
		// it: ask again and count only the nodes that did not catch up.
		if err := sleep(ctx, lagRecheck); err != nil {
			return err
		}
		second, err := c.Status(ctx)
		if err != nil {
			return err
		}
		st, before = &second, st
	}
	problems := diagnose(st, before, *maxLag)
	if asJSON {
		if err := printJSON(env, statusOutput{Status: st, Problems: append([]string{}, problems...)}); err != nil {
			return err
		}
	} else if *quiet {
		for _, p := range problems {
			fmt.Fprintln(env.stdout, p)
		}
	} else if err := printStatus(env, st, problems); err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("cluster degraded: %d %s", len(problems), plural(len(problems), "problem"))
	}
	return nil
}

// statusOutput is what status -o json prints: GET /v1/status's answer and
// the problems found in it.
type statusOutput struct {
	*atoll.Status
	Problems []string `json:"problems"`
}

// lagRecheck is how long status waits before asking again when a node is
// more than --max-lag entries behind.
const lagRecheck = time.Second

// printStatus writes the status, the node table and the problems.
func printStatus(env *cliEnv, st *atoll.Status, problems []string) error {
	fmt.Fprintf(env.stdout, "node:     %s (%s, %s)\nleader:   %s\napplied:  %d (commit %d, leader's commit %d)\nsites:    %d\nreplicas: %d\nversion:  %s\n",
		st.ID, st.Role, st.RaftState, orDash(st.LeaderID), st.AppliedIndex, st.CommitIndex, st.LeaderCommit, st.Sites, st.Replicas, st.Version)
	fmt.Fprintf(env.stdout, "features: cluster at level %d\n", st.FeatureLevel)
	for _, note := range versionNotes(st) {
		fmt.Fprintln(env.stdout, "upgrade:  "+note)
	}
	if st.CompressPending > 0 {
		fmt.Fprintf(env.stdout, "compress: %d blobs waiting for their compressed variants (served uncompressed meanwhile)\n", st.CompressPending)
	}
	if r := st.Repair; r != nil {
		fmt.Fprintf(env.stdout, "repair:   %d blobs referenced, %d under-replicated, %d missing (census %s ago, took %s)\n",
			r.Referenced, r.UnderReplicated, r.Missing, time.Since(r.At).Round(time.Second), r.Took)
	} else {
		fmt.Fprintln(env.stdout, "repair:   no census yet")
	}
	fmt.Fprintln(env.stdout)
	if err := printNodes(env, st.Nodes); err != nil {
		return err
	}
	fmt.Fprintln(env.stdout)
	if len(problems) == 0 {
		fmt.Fprintln(env.stdout, "no problems")
		return nil
	}
	fmt.Fprintf(env.stdout, "%d %s:\n", len(problems), plural(len(problems), "problem"))
	for _, p := range problems {
		fmt.Fprintln(env.stdout, "  "+p)
	}
	return nil
}

// behind reports whether a node that answered is more than maxLag entries
// behind the leader's commit index.
func behind(st *atoll.Status, maxLag int64) bool {
	for _, n := range st.Nodes {
		if n.RaftState != "unreachable" && n.Lag > maxLag {
			return true
		}
	}
	return false
}

// diagnose returns one line per problem in st, saying what is wrong: no
// leader, a node that does not answer (with how far behind it was when it
// last did), a node lagging, a Raft state other than Leader or Follower,
// no repair census yet, blobs under-replicated or missing in the last one.
// A node counts as lagging when it is more than maxLag entries behind in st
// and, if before (an earlier sample) is given, was already in before and
// has not since applied what the leader had committed then: a follower
// that is merely busy keeps up.
func diagnose(st, before *atoll.Status, maxLag int64) []string {
	var out []string
	if st.LeaderID == "" {
		out = append(out, fmt.Sprintf("no leader known to %s: writes fail until a majority of the core nodes are up and in contact", st.ID))
	}
	earlier := map[string]atoll.NodeStatus{}
	if before != nil {
		for _, n := range before.Nodes {
			earlier[n.ID] = n
		}
	}
	for _, n := range st.Nodes {
		switch {
		case n.Stopped != "":
			out = append(out, fmt.Sprintf("node %s stopped applying the replicated state: %s", n.ID, n.Stopped))
		case n.RaftState == "unreachable":
			out = append(out, "node "+n.ID+" does not answer at "+n.APIAddr+lastSeen(n, st.LeaderCommit))
		case n.Lag > maxLag && lagging(n, earlier, before, maxLag):
			out = append(out, fmt.Sprintf("node %s is %d entries behind the leader's commit index %d (applied %d; --max-lag %d)",
				n.ID, n.Lag, st.LeaderCommit, n.AppliedIndex, maxLag))
		case n.RaftState != "" && n.RaftState != "Leader" && n.RaftState != "Follower":
			out = append(out, fmt.Sprintf("node %s is %s in Raft: it has no leader", n.ID, n.RaftState))
		}
	}
	r := st.Repair
	switch {
	case r == nil:
		out = append(out, "no repair census yet: the leader runs one every --repair-interval and on membership changes; POST /v1/repair runs one now")
	default:
		if r.UnderReplicated > 0 {
			out = append(out, fmt.Sprintf("%d blobs had fewer than %d copies at the last census (%s ago): repair copies them; POST /v1/repair checks again",
				r.UnderReplicated, st.Replicas, time.Since(r.At).Round(time.Second)))
		}
		if r.Missing > 0 {
			out = append(out, fmt.Sprintf("%d blobs were on no node at the last census (%s ago): the files using them answer 503 until a node holding them is back or they are deployed again",
				r.Missing, time.Since(r.At).Round(time.Second)))
		}
	}
	return out
}

// versionNotes says, in a line each, which versions the nodes run when
// they differ, and which nodes hold the cluster's feature level back: an
// upgrade in progress, worth a line but not a problem.
func versionNotes(st *atoll.Status) []string {
	var out []string
	byVersion := map[string][]string{}
	for _, n := range st.Nodes {
		if n.RaftState != "unreachable" {
			v := n.Version
			if v == "" {
				v = "version unknown"
			}
			byVersion[v] = append(byVersion[v], n.ID)
		}
	}
	if len(byVersion) > 1 {
		versions := slices.Sorted(maps.Keys(byVersion))
		parts := make([]string, len(versions))
		for i, v := range versions {
			parts[i] = fmt.Sprintf("%s on %s", v, strings.Join(byVersion[v], ", "))
		}
		out = append(out, "nodes run different versions: "+strings.Join(parts, "; "))
	}
	if len(st.FeatureHeldBy) > 0 {
		out = append(out, fmt.Sprintf("the feature level stays at %d until these nodes run a newer atoll: %s",
			st.FeatureLevel, strings.Join(st.FeatureHeldBy, ", ")))
	}
	return out
}

// lagging reports whether n, behind now, was also more than maxLag entries
// behind in before and has not applied what the leader had committed then.
// Without before, being behind is enough.
func lagging(n atoll.NodeStatus, earlier map[string]atoll.NodeStatus, before *atoll.Status, maxLag int64) bool {
	if before == nil {
		return true
	}
	e, ok := earlier[n.ID]
	return ok && e.Lag > maxLag && n.AppliedIndex < before.LeaderCommit
}

// lastSeen says when an unreachable node last answered and how far behind
// the leader's commit index it was then.
func lastSeen(n atoll.NodeStatus, commit uint64) string {
	switch {
	case n.LastSeen == "" || n.Lag < 0:
		return " (it has not answered the node asked since that one started)"
	case n.Lag == 0:
		return fmt.Sprintf(" (last answered %s ago, up to date then)", n.LastSeen)
	}
	return fmt.Sprintf(" (last answered %s ago at applied index %d: %d entries behind the leader's commit index %d)",
		n.LastSeen, n.AppliedIndex, n.Lag, commit)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// firstCensus returns the status, asking again until it carries a census
// report (a leader takes one as it takes office) or deadline passes.
func firstCensus(ctx context.Context, c *client.Client, deadline time.Time) (atoll.Status, error) {
	for {
		st, err := c.Status(ctx)
		if err != nil || st.Repair != nil || !time.Now().Before(deadline) {
			return st, err
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return st, err
		}
	}
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
	fmt.Fprintln(tw, "ID\tROLE\tSTATE\tRAFT\tFED BY\tLAST CONTACT\tAPPLIED\tLAG\tBLOBS\tBYTES\tAPI\tVERSION\tLEVEL")
	for _, n := range nodes {
		lag := "-"
		if n.Lag >= 0 {
			lag = fmt.Sprint(n.Lag)
		}
		version, level := "-", "-" // did not answer
		if n.FeatureLevel > 0 {
			version, level = n.Version, fmt.Sprint(n.FeatureLevel)
			if version == "" {
				version = "unknown"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", n.ID, n.Role, n.State, orDash(n.RaftState),
			orDash(n.Feeder), orDash(n.LastContact), n.AppliedIndex, lag, n.Blobs, humanBytes(n.Bytes), n.APIAddr, version, level)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range nodes {
		if n.DiskLow != "" {
			fmt.Fprintf(env.stdout, "%s: disk low, new blobs go to other nodes: %s\n", n.ID, n.DiskLow)
		}
		if n.Stopped != "" {
			fmt.Fprintf(env.stdout, "%s: stopped applying the replicated state: %s\n", n.ID, n.Stopped)
		}
	}
	return nil
}
