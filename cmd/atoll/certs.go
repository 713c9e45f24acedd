package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/atoll-hosting/atoll/pki"
)

// runCerts handles `atoll certs init`: a CA and node certificates for a
// cluster's mutual TLS (--tls-cert, --tls-key, --tls-ca).
func runCerts(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 || args[0] != "init" {
		return fmt.Errorf("%w: atoll certs init --dir DIR --nodes NAME,... [--hosts H,...]", errUsage)
	}
	fs := newFlagSet(env, "certs init", "certs init --dir DIR --nodes core1,core2,edge1 [--hosts 127.0.0.1,localhost]")
	dir := fs.String("dir", "", "directory for ca.pem, ca-key.pem and NAME.pem, NAME-key.pem (required; a CA already there is reused)")
	nodes := fs.String("nodes", "", "comma-separated node names, one certificate each (required)")
	hosts := fs.String("hosts", strings.Join(pki.DefaultHosts, ","), "comma-separated IP addresses and DNS names every node certificate covers")
	if _, err := parseArgs(fs, args[1:], 0, "no arguments"); err != nil {
		return err
	}
	if *dir == "" || *nodes == "" {
		return fmt.Errorf("%w: --dir and --nodes are required", errUsage)
	}
	written, err := pki.Init(*dir, splitList(*nodes), splitList(*hosts))
	for _, f := range written {
		fmt.Fprintln(env.stdout, "wrote", f)
	}
	return err
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
