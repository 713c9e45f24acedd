package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"
)

// runToken handles `atoll token create|list|revoke`: site-scoped deploy
// tokens. Managing them needs the admin token.
func runToken(ctx context.Context, env *cliEnv, args []string) error {
	return runGroup(ctx, env, "token", args,
		subcommand{"create", runTokenCreate},
		subcommand{"list", runTokenList},
		subcommand{"revoke", runTokenRevoke})
}

// runTokenCreate handles `atoll token create --site NAME [--name N]`.
func runTokenCreate(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "token create", "token create --site NAME [--name N]")
	site := fs.String("site", "", "site the token may deploy to (required)")
	name := fs.String("name", "", "what the token is for, e.g. ci")
	_, c, err := cf.parse(fs, args, 0, "no arguments")
	if err != nil {
		return err
	}
	if err := requireFlags(fs, "site"); err != nil {
		return err
	}
	tok, err := c.CreateToken(ctx, *site, *name)
	if err != nil {
		return err
	}
	// The note goes to stderr, the secret alone to stdout, so that
	// TOKEN=$(atoll token create ...) captures just the secret.
	fmt.Fprintf(env.stderr, "created token %s for site %s; copy the secret below now, it cannot be shown again:\n", tok.ID, tok.Site)
	fmt.Fprintln(env.stdout, tok.Token)
	return nil
}

// runTokenList handles `atoll token list`.
func runTokenList(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "token list", "token list")
	_, c, err := cf.parse(fs, args, 0, "no arguments")
	if err != nil {
		return err
	}
	tokens, err := c.Tokens(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSITE\tNAME\tCREATED")
	for _, t := range tokens {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.ID, t.Site, orDash(t.Name), t.Created.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

// runTokenRevoke handles `atoll token revoke ID`.
func runTokenRevoke(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "token revoke", "token revoke ID")
	pos, c, err := cf.parse(fs, args, 1, "ID")
	if err != nil {
		return err
	}
	if err := c.RevokeToken(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "revoked token %s\n", pos[0])
	return nil
}
