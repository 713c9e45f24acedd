package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/atoll-hosting/atoll"
)

// runRoute handles `atoll route --site NAME [--deploy ID] PATH`: what the
// edge does for PATH, per the deploy's files, _redirects and _headers.
func runRoute(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "route", "route --site NAME [--deploy ID] PATH")
	site := fs.String("site", "", "site to ask about (required)")
	deploy := fs.String("deploy", "", "deploy to ask about (default: the site's live deploy)")
	pos, c, err := cf.parse(fs, args, 1, "PATH")
	if err != nil {
		return err
	}
	if err := requireFlags(fs, "site"); err != nil {
		return err
	}
	id := *deploy
	if id == "" {
		s, err := c.Site(ctx, *site)
		if err != nil {
			return err
		}
		if s.Published == "" {
			return fmt.Errorf("site %s has nothing published; give --deploy ID", *site)
		}
		id = s.Published
	} else if d, err := c.Deploy(ctx, id); err != nil {
		return err
	} else if d.Site != *site {
		return fmt.Errorf("deploy %s belongs to site %q, not %q", d.ID, d.Site, *site)
	}
	r, err := c.Route(ctx, id, pos[0])
	if err != nil {
		return err
	}
	printRoute(env, r)
	return nil
}

func printRoute(env *cliEnv, r atoll.RouteResponse) {
	fmt.Fprintf(env.stdout, "deploy:  %s\npath:    %s\n", r.Deploy, r.Path)
	fmt.Fprintf(env.stdout, "file:    %s\n", orDash(r.File))
	if r.Rule != nil {
		force := ""
		if r.Rule.Force {
			force = "!"
		}
		fmt.Fprintf(env.stdout, "rule:    _redirects:%d: %s %s %d%s\ntarget:  %s\n",
			r.Rule.Line, r.Rule.From, r.Rule.To, r.Rule.Status, force, r.Target)
	} else {
		fmt.Fprintln(env.stdout, "rule:    -")
	}
	fmt.Fprintf(env.stdout, "status:  %d %s\n", r.Status, http.StatusText(r.Status))
	if r.Auth {
		fmt.Fprintln(env.stdout, "auth:    Basic-Auth required (401 without valid credentials)")
	}
	for _, h := range r.Headers {
		fmt.Fprintf(env.stdout, "header:  %s\n", h)
	}
	for _, h := range r.Remove {
		fmt.Fprintf(env.stdout, "removed: %s\n", h)
	}
}
