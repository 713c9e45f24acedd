package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

// runSite handles `atoll site create|list|delete`.
func runSite(ctx context.Context, env *cliEnv, args []string) error {
	return runGroup(ctx, env, "site", args,
		subcommand{"create", runSiteCreate},
		subcommand{"list", runSiteList},
		subcommand{"delete", runSiteDelete})
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
