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
	if len(args) == 0 {
		return fmt.Errorf("%w: atoll token create|list|revoke", errUsage)
	}
	var cf clientFlags
	switch sub, rest := args[0], args[1:]; sub {
	case "create":
		fs := newFlagSet(env, "token create", "token create --site NAME [--name N]")
		site := fs.String("site", "", "site the token may deploy to (required)")
		name := fs.String("name", "", "what the token is for, e.g. ci")
		_, c, err := cf.parse(fs, rest, 0, "no arguments")
		if err != nil {
			return err
		}
		if *site == "" {
			return fmt.Errorf("%w: --site is required", errUsage)
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
	case "list":
		fs := newFlagSet(env, "token list", "token list")
		_, c, err := cf.parse(fs, rest, 0, "no arguments")
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
	case "revoke":
		fs := newFlagSet(env, "token revoke", "token revoke ID")
		pos, c, err := cf.parse(fs, rest, 1, "ID")
		if err != nil {
			return err
		}
		if err := c.RevokeToken(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "revoked token %s\n", pos[0])
		return nil
	default:
		return fmt.Errorf("%w: unknown token command %q (create, list, revoke)", errUsage, sub)
	}
}
