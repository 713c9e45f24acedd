package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/atoll-hosting/atoll"
)

// runToken handles `atoll token create|list|revoke`: site-scoped deploy
// tokens, and `atoll token rotate-admin`. All need the admin token.
func runToken(ctx context.Context, env *cliEnv, args []string) error {
	return runGroup(ctx, env, "token", args,
		subcommand{"create", runTokenCreate},
		subcommand{"list", runTokenList},
		subcommand{"revoke", runTokenRevoke},
		subcommand{"rotate-admin", runTokenRotateAdmin})
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

// runTokenRotateAdmin handles `atoll token rotate-admin [--from-file F]`:
// it makes a new admin token (generated, or read from F, "-" for stdin)
// the cluster's, and prints a generated one once on stdout. Every node
// refuses the old token once it has applied the change.
func runTokenRotateAdmin(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "token rotate-admin", "token rotate-admin [--from-file FILE|-]")
	from := fs.String("from-file", "", "`file` holding the new admin token, - for stdin (default: generate one and print it)")
	_, c, err := cf.parse(fs, args, 0, "no arguments")
	if err != nil {
		return err
	}
	token, generated, err := newAdminToken(*from)
	if err != nil {
		return err
	}
	if err := c.RotateAdminToken(ctx, token); err != nil {
		return err
	}
	if !generated {
		fmt.Fprintln(env.stderr, "rotated the admin token: every node now refuses the old one")
		return nil
	}
	// As for token create: the note on stderr, the secret alone on stdout.
	fmt.Fprintln(env.stderr, "rotated the admin token: every node now refuses the old one; copy the new one below now, it cannot be shown again:")
	fmt.Fprintln(env.stdout, token)
	return nil
}

// newAdminToken reads the new admin token from path ("-": stdin), or
// generates one when path is empty ("atl_" and 48 hex digits, like the
// one a bootstrapping node makes); generated says which.
func newAdminToken(path string) (token string, generated bool, err error) {
	var b []byte
	switch path {
	case "":
		var r [24]byte
		if _, err := rand.Read(r[:]); err != nil {
			return "", false, fmt.Errorf("generate token: %w", err)
		}
		return "atl_" + hex.EncodeToString(r[:]), true, nil
	case "-":
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 4096))
	default:
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", false, fmt.Errorf("--from-file: %w", err)
	}
	token = strings.TrimSpace(string(b))
	if err := atoll.CheckAdminToken(token); err != nil {
		return "", false, fmt.Errorf("--from-file %s: %w", path, err)
	}
	return token, false, nil
}
