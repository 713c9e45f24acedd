package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/atoll-hosting/atoll"
)

// runCert handles `atoll cert put|list|delete`: TLS certificates of sites'
// custom domains, served by every edge's HTTPS listener. Needs the admin
// token.
func runCert(ctx context.Context, env *cliEnv, args []string) error {
	return runGroup(ctx, env, "cert", args,
		subcommand{"put", runCertPut},
		subcommand{"list", runCertList},
		subcommand{"delete", runCertDelete})
}

// runCertPut handles `atoll cert put --site S --domain D --cert FILE --key FILE`.
func runCertPut(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "cert put", "cert put --site S --domain D --cert FILE --key FILE")
	site := fs.String("site", "", "site the domain belongs to (required)")
	domain := fs.String("domain", "", "custom domain of the site (required)")
	certFile := fs.String("cert", "", "PEM certificate chain, leaf first (required)")
	keyFile := fs.String("key", "", "PEM private key of the leaf (required)")
	_, c, err := cf.parse(fs, args, 0, "no arguments")
	if err != nil {
		return err
	}
	if err := requireFlags(fs, "site", "domain", "cert", "key"); err != nil {
		return err
	}
	certPEM, err := os.ReadFile(*certFile)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	info, err := c.PutCert(ctx, *site, *domain, string(certPEM), string(keyPEM))
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "stored certificate for %s (site %s), valid until %s\n",
		info.Domain, info.Site, info.NotAfter.Local().Format(time.DateTime))
	return nil
}

// runCertList handles `atoll cert list --site S`.
func runCertList(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "cert list", "cert list --site S")
	site := fs.String("site", "", "site whose certificates to list (required)")
	_, c, err := cf.parse(fs, args, 0, "no arguments")
	if err != nil {
		return err
	}
	if err := requireFlags(fs, "site"); err != nil {
		return err
	}
	certs, err := c.Certs(ctx, *site)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tSOURCE\tSTATE\tNOT AFTER\tISSUER\tNAMES")
	var failing []atoll.CertInfo
	for _, ci := range certs {
		notAfter := "-"
		if !ci.NotAfter.IsZero() {
			notAfter = ci.NotAfter.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ci.Domain, orDash(ci.Source), orDash(ci.State), notAfter,
			orDash(ci.Issuer), orDash(strings.Join(ci.Names, ",")))
		if ci.Error != "" {
			failing = append(failing, ci)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, ci := range failing {
		retry := "next retry not scheduled yet"
		if !ci.NextRetry.IsZero() {
			retry = "next retry at " + ci.NextRetry.Local().Format(time.DateTime)
		}
		fmt.Fprintf(env.stdout, "%s: %s (%d attempts in a row failed; %s)\n", ci.Domain, ci.Error, ci.Attempts, retry)
	}
	return nil
}

// runCertDelete handles `atoll cert delete --site S --domain D`.
func runCertDelete(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	fs := newFlagSet(env, "cert delete", "cert delete --site S --domain D")
	site := fs.String("site", "", "site the domain belongs to (required)")
	domain := fs.String("domain", "", "domain whose certificate to delete (required)")
	_, c, err := cf.parse(fs, args, 0, "no arguments")
	if err != nil {
		return err
	}
	if err := requireFlags(fs, "site", "domain"); err != nil {
		return err
	}
	if err := c.DeleteCert(ctx, *site, *domain); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "deleted certificate for %s\n", *domain)
	return nil
}
