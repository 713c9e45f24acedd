package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/serve"
)

// runSite handles `atoll site create|list|show|update|lock|unlock|delete|stats`.
func runSite(ctx context.Context, env *cliEnv, args []string) error {
	return runGroup(ctx, env, "site", args,
		subcommand{"create", runSiteCreate},
		subcommand{"list", runSiteList},
		subcommand{"show", runSiteShow},
		subcommand{"update", runSiteUpdate},
		subcommand{"lock", runSiteLock},
		subcommand{"unlock", runSiteUnlock},
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

// runSiteLock handles `atoll site lock NAME`.
func runSiteLock(ctx context.Context, env *cliEnv, args []string) error {
	return setSiteLock(ctx, env, args, "lock", true)
}

// runSiteUnlock handles `atoll site unlock NAME`.
func runSiteUnlock(ctx context.Context, env *cliEnv, args []string) error {
	return setSiteLock(ctx, env, args, "unlock", false)
}

func setSiteLock(ctx context.Context, env *cliEnv, args []string, name string, locked bool) error {
	var cf clientFlags
	fs := newFlagSet(env, "site "+name, "site "+name+" NAME")
	pos, c, err := cf.parse(fs, args, 1, "NAME")
	if err != nil {
		return err
	}
	site, err := c.LockSite(ctx, pos[0], locked)
	if err != nil {
		return err
	}
	if locked {
		fmt.Fprintf(env.stdout, "site %s locked: deploy %s stays live; publishes are refused until atoll site unlock %s\n",
			site.Name, orDash(site.Published), site.Name)
	} else {
		fmt.Fprintf(env.stdout, "site %s unlocked\n", site.Name)
	}
	return nil
}

// runSiteUpdate handles `atoll site update NAME [--retain N] [--max-bytes
// SIZE] [--max-uploading N] [--max-files N] [--https-only[=false]]
// [--hsts[=false]]`: only the flags given change; a limit of 0 puts the
// site back on the cluster default.
func runSiteUpdate(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "site update", "site update NAME [--retain N] [--max-bytes SIZE] [--max-uploading N] [--max-files N] [--https-only[=false]] [--hsts[=false]]")
	var retain, maxUploading, maxFiles int
	var maxBytes int64
	var httpsOnly, hsts bool
	fs.IntVar(&retain, "retain", 0, "deploys kept for rollback")
	sizeVar(fs, &maxBytes, "max-bytes", "`size` of the files of one deploy of the site; 0: the cluster's --site-max-bytes")
	fs.IntVar(&maxUploading, "max-uploading", 0, "deploys the site may have uploading at once; 0: the cluster's --site-max-uploading")
	fs.IntVar(&maxFiles, "max-files", 0, "files one deploy of the site may hold; 0: the cluster's --max-files")
	fs.BoolVar(&httpsOnly, "https-only", false, "answer plain-HTTP requests with 308 to HTTPS (ACME challenges excepted); --https-only=false turns it off")
	fs.BoolVar(&hsts, "hsts", false, "add Strict-Transport-Security: "+serve.HSTSValue+" to HTTPS answers; --hsts=false turns it off")
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
		case "https-only":
			req.HTTPSOnly = &httpsOnly
		case "hsts":
			req.HSTS = &hsts
		}
	})
	if req == (atoll.UpdateSiteRequest{}) {
		return fmt.Errorf("%w: give at least one of --retain, --max-bytes, --max-uploading, --max-files, --https-only, --hsts", errUsage)
	}
	site, err := c.PatchSite(ctx, pos[0], req)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "updated site %s: retain %d, max-bytes %s, max-uploading %s, max-files %s, https-only %s, hsts %s\n", site.Name, site.Retain,
		orDefault(site.MaxBytes != 0, formatBytes(site.MaxBytes)), orDefault(site.MaxUploading != 0, fmt.Sprint(site.MaxUploading)),
		orDefault(site.MaxFiles != 0, fmt.Sprint(site.MaxFiles)), onOff(site.HTTPSOnly), onOff(site.HSTS))
	return nil
}

// runSiteShow handles `atoll site show NAME`: one "key: value" line per
// setting.
func runSiteShow(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "site show", "site show NAME")
	pos, c, err := cf.parse(fs, args, 1, "NAME")
	if err != nil {
		return err
	}
	s, err := c.Site(ctx, pos[0])
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 1, ' ', 0)
	for _, row := range [][2]string{
		{"name", s.Name},
		{"published", orDash(s.Published)},
		{"domains", orDash(strings.Join(s.Domains, ","))},
		{"created", s.Created.Local().Format(time.DateTime)},
		{"retain", fmt.Sprint(s.Retain)},
		{"max-bytes", orDefault(s.MaxBytes != 0, formatBytes(s.MaxBytes))},
		{"max-uploading", orDefault(s.MaxUploading != 0, fmt.Sprint(s.MaxUploading))},
		{"max-files", orDefault(s.MaxFiles != 0, fmt.Sprint(s.MaxFiles))},
		{"https-only", onOff(s.HTTPSOnly)},
		{"hsts", onOff(s.HSTS)},
		{"locked", onOff(s.Locked)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// httpsColumn is a site's HTTPS settings in `site list`: "-", "only",
// "hsts" or "only,hsts".
func httpsColumn(s atoll.Site) string {
	switch {
	case s.HTTPSOnly && s.HSTS:
		return "only,hsts"
	case s.HTTPSOnly:
		return "only"
	case s.HSTS:
		return "hsts"
	}
	return "-"
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
	fs := newFlagSet(env, "site list", "site list [-o json]")
	output := outputFlag(fs)
	_, c, err := cf.parse(fs, args, 0, "no arguments")
	if err != nil {
		return err
	}
	asJSON, err := jsonOutput(*output)
	if err != nil {
		return err
	}
	sites, err := c.Sites(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env, atoll.SiteList{Sites: sites})
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPUBLISHED\tDOMAINS\tHTTPS\tCREATED")
	for _, s := range sites {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, orDash(s.Published), orDash(strings.Join(s.Domains, ",")),
			httpsColumn(s), s.Created.Local().Format(time.DateTime))
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
