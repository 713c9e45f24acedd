package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/atoll-hosting/atoll"
)

// runSite handles `atoll site create|list|update|delete|stats`.
func runSite(ctx context.Context, env *cliEnv, args []string) error {
	return runGroup(ctx, env, "site", args,
		subcommand{"create", runSiteCreate},
		subcommand{"list", runSiteList},
		subcommand{"update", runSiteUpdate},
		subcommand{"delete", runSiteDelete},
		subcommand{"stats", runSiteStats})
}

// runSiteStats handles `atoll site stats NAME`: the site's edge requests
// and body bytes, summed across the nodes (each node counts since it
// started), then each node's own. A node that did not answer is listed
// with its error.
func runSiteStats(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "site stats", "site stats NAME")
	pos, c, err := cf.parse(fs, args, 1, "NAME")
	if err != nil {
		return err
	}
	st, err := c.SiteStats(ctx, pos[0])
	if err != nil {
		return err
	}
	answered := 0
	for _, nd := range st.Nodes {
		if nd.Error == "" {
			answered++
		}
	}
	fmt.Fprintf(env.stdout, "site %s: %d requests, %s sent (%d of %d nodes answered)\n",
		st.Site, st.Requests, formatBytes(int64(st.Bytes)), answered, len(st.Nodes))
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tREQUESTS\tBYTES")
	for _, nd := range st.Nodes {
		if nd.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t- (%s)\n", nd.ID, nd.Error)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\n", nd.ID, nd.Requests, nd.Bytes)
	}
	return tw.Flush()
}

// runSiteUpdate handles `atoll site update NAME [--retain N] [--max-bytes
// SIZE] [--max-uploading N] [--max-files N]`: only the flags given change;
// a limit of 0 puts the site back on the cluster default.
func runSiteUpdate(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "site update", "site update NAME [--retain N] [--max-bytes SIZE] [--max-uploading N] [--max-files N]")
	var retain, maxUploading, maxFiles int
	var maxBytes int64
	fs.IntVar(&retain, "retain", 0, "deploys kept for rollback")
	sizeVar(fs, &maxBytes, "max-bytes", "`size` of the files of one deploy of the site; 0: the cluster's --site-max-bytes")
	fs.IntVar(&maxUploading, "max-uploading", 0, "deploys the site may have uploading at once; 0: the cluster's --site-max-uploading")
	fs.IntVar(&maxFiles, "max-files", 0, "files one deploy of the site may hold; 0: the cluster's --max-files")
	pos, c, err := cf.parse(fs, args, 1, "NAME")
	if err != nil {
		return err
	}
	var req atoll.UpdateSiteRequest
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "retain":
			req.Retain = &retain
		case "max-bytes":
			req.MaxBytes = &maxBytes
		case "max-uploading":
			req.MaxUploading = &maxUploading
		case "max-files":
			req.MaxFiles = &maxFiles
		}
	})
	if req == (atoll.UpdateSiteRequest{}) {
		return fmt.Errorf("%w: give at least one of --retain, --max-bytes, --max-uploading, --max-files", errUsage)
	}
	site, err := c.PatchSite(ctx, pos[0], req)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "updated site %s: retain %d, max-bytes %s, max-uploading %s, max-files %s\n", site.Name, site.Retain,
		orDefault(site.MaxBytes != 0, formatBytes(site.MaxBytes)), orDefault(site.MaxUploading != 0, fmt.Sprint(site.MaxUploading)),
		orDefault(site.MaxFiles != 0, fmt.Sprint(site.MaxFiles)))
	return nil
}

// orDefault is s when set, else "default" (the cluster's).
func orDefault(set bool, s string) string {
	if !set {
		return "default"
	}
	return s
}

// runSiteCreate handles `atoll site create NAME [--domain D]... [--retain N]`.
func runSiteCreate(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "site create", "site create NAME [--domain D]... [--retain N]")
	var domains stringList
	fs.Var(&domains, "domain", "custom domain the site answers at (repeatable)")
	retain := fs.Int("retain", 0, "deploys kept for rollback (default 10)")
	pos, c, err := cf.parse(fs, args, 1, "NAME")
	if err != nil {
		return err
	}
	site, err := c.CreateSite(ctx, pos[0], domains, *retain)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "created site %s\n", site.Name)
	return nil
}

// runSiteList handles `atoll site list`.
func runSiteList(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "site list", "site list")
	_, c, err := cf.parse(fs, args, 0, "no arguments")
	if err != nil {
		return err
	}
	sites, err := c.Sites(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPUBLISHED\tDOMAINS\tCREATED")
	for _, s := range sites {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, orDash(s.Published), orDash(strings.Join(s.Domains, ",")),
			s.Created.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

// runSiteDelete handles `atoll site delete NAME`.
func runSiteDelete(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "site delete", "site delete NAME")
	pos, c, err := cf.parse(fs, args, 1, "NAME")
	if err != nil {
		return err
	}
	if err := c.DeleteSite(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "deleted site %s\n", pos[0])
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// humanBytes formats n as B, KB, MB or GB (powers of 1000, as disks are sold).
func humanBytes(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f KB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	default:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	}
}
