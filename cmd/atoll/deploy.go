package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"text/tabwriter"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/builder/client"
)

// runDeploy handles `atoll deploy DIR --site NAME [--no-publish]`.
func runDeploy(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "deploy", "deploy DIR --site NAME [--no-publish] [--message TEXT] [--dry-run] [-o json]")
	site := fs.String("site", "", "site to deploy to (required)")
	noPublish := fs.Bool("no-publish", false, "upload and finalize, but do not make it live")
	concurrency := fs.Int("concurrency", client.DefaultConcurrency, "files hashed or uploaded at once")
	noHashCache := fs.Bool("no-hash-cache", false, "hash every file, without the cache of file hashes kept in the user's cache folder")
	dryRun := fs.Bool("dry-run", false, "hash DIR and print what would be uploaded, changing nothing")
	message := fs.String("message", "", "what this deploy is, stored with it and shown by atoll deploys (one line, at most 500 bytes)")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile (pprof format) of this command to `FILE`")
	output := outputFlag(fs)
	pos, c, err := cf.parse(fs, args, 1, "DIR")
	if err != nil {
		return err
	}
	asJSON, err := jsonOutput(*output)
	if err != nil {
		return err
	}
	if err := requireFlags(fs, "site"); err != nil {
		return err
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	var uploadedBytes int64
	tty := isTerminal(env.stderr)
	opt := client.DeployOptions{
		Publish:     !*noPublish,
		Message:     *message,
		Concurrency: *concurrency,
		// Redeploys hash only files whose size, times or inode changed.
		HashCacheDir: client.DefaultHashCacheDir(),
		Progress: func(p client.Progress) {
			if p.Phase == client.PhaseUpload {
				uploadedBytes = p.Bytes
			}
			if tty {
				fmt.Fprintf(env.stderr, "\r\033[K%-8s %d/%d files  %s/%s", p.Phase+"ing", p.Files, p.FilesTotal,
					humanBytes(p.Bytes), humanBytes(p.BytesTotal))
			}
		},
	}
	if *noHashCache {
		opt.HashCacheDir = ""
	}
	if *dryRun {
		return printPlan(ctx, env, c, pos[0], *site, opt, asJSON)
	}
	start := time.Now()
	d, err := c.DeployDir(ctx, pos[0], *site, opt)
	if tty {
		fmt.Fprint(env.stderr, "\r\033[K")
	}
	if err != nil {
		return err
	}
	for _, w := range d.Warnings {
		fmt.Fprintf(env.stderr, "warning: %s\n", w)
	}
	if asJSON {
		return printJSON(env, d)
	}
	fmt.Fprintf(env.stdout, "deploy %s: %d files, %d uploaded (%s) in %s\n", d.ID, d.Files, len(d.Required),
		humanBytes(uploadedBytes), time.Since(start).Round(time.Millisecond))
	if d.Skipped > 0 {
		fmt.Fprintf(env.stdout, "skipped %d dot-files (names starting with \".\", except .well-known, are not published)\n", d.Skipped)
	}
	if *noPublish {
		fmt.Fprintf(env.stdout, "ready, not published\npreview:   %s\n", orDash(d.PreviewURL))
		return nil
	}
	fmt.Fprintf(env.stdout, "published: %s\npreview:   %s\n", orDash(d.URL), orDash(d.PreviewURL))
	return nil
}

// startCPUProfile writes a CPU profile of the process to path until stop
// is called (deploy --cpu-profile).
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// printPlan prints what deploying dir would upload (deploy --dry-run).
func printPlan(ctx context.Context, env *cliEnv, c *client.Client, dir, site string, opt client.DeployOptions, asJSON bool) error {
	plan, err := c.PlanDir(ctx, dir, site, opt)
	if isTerminal(env.stderr) {
		fmt.Fprint(env.stderr, "\r\033[K")
	}
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env, plan)
	}
	fmt.Fprintf(env.stdout, "dry run: %d files (%s); %d to upload (%s); nothing changed\n",
		plan.Files, humanBytes(plan.Bytes), len(plan.Upload), humanBytes(plan.UpBytes))
	for _, p := range plan.Upload {
		fmt.Fprintf(env.stdout, "upload %s\n", p)
	}
	return nil
}

// runDeploys handles `atoll deploys --site NAME`.
func runDeploys(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "deploys", "deploys --site NAME [-o json]")
	site := fs.String("site", "", "site whose deploys to list (required)")
	output := outputFlag(fs)
	_, c, err := cf.parse(fs, args, 0, "no arguments")
	if err != nil {
		return err
	}
	if err := requireFlags(fs, "site"); err != nil {
		return err
	}
	asJSON, err := jsonOutput(*output)
	if err != nil {
		return err
	}
	deploys, err := c.Deploys(ctx, *site)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env, atoll.DeployList{Deploys: deploys})
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tFILES\tSIZE\tCREATED\tMESSAGE")
	for _, d := range deploys {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.State, d.Files, humanBytes(d.Bytes),
			d.Created.Local().Format(time.DateTime), orDash(atoll.Truncate(d.Message, 60)))
	}
	return tw.Flush()
}

// runRollback handles `atoll rollback --site NAME DEPLOY`.
func runRollback(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "rollback", "rollback --site NAME DEPLOY")
	site := fs.String("site", "", "site to roll back (required)")
	pos, c, err := cf.parse(fs, args, 1, "DEPLOY")
	if err != nil {
		return err
	}
	if err := requireFlags(fs, "site"); err != nil {
		return err
	}
	d, err := c.Deploy(ctx, pos[0])
	if err != nil {
		return err
	}
	if d.Site != *site {
		return fmt.Errorf("deploy %s belongs to site %q, not %q", d.ID, d.Site, *site)
	}
	d, err = c.Rollback(ctx, d.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "published deploy %s on %s: %s\n", d.ID, d.Site, orDash(d.URL))
	return nil
}

// isTerminal reports whether w is a terminal (terminal_linux.go): where
// deploy draws its progress line.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && fileIsTerminal(f)
}
