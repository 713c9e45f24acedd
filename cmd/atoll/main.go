// Command atoll is the Atoll binary: `atoll server` runs a node, every other
// subcommand is a client of a node's API. This package only parses flags and
// wires packages; the logic lives in node, builder and their clients.
//
// Flags follow one idiom (flags.go): typed declarations on the command's
// flag set, the command line, then one pass that applies ATOLL_<NAME>
// through the same parsers, then range checks naming the flag. The package
// must never read the environment elsewhere (except ATOLL_DATA, where a
// client finds a local node's token), never print a secret (usage text
// shows no value of a secret flag), and never exit but in main, which turns
// Run's error into an exit code and one line on stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `atoll — distributed hosting for static websites

Usage:
  atoll server [flags]                      run a node
  atoll status                              show the node and cluster state
  atoll node list                           list the cluster's nodes
  atoll node join ID --raft-addr A --api-addr B [--http-addr C] [--role edge]
                                            add a node to the cluster
  atoll node drain ID                       move a node's blobs to their new owners
  atoll node remove ID [--force]            take a node out of the cluster
  atoll node scrub ID                       check a node's blobs against their hashes now
  atoll site create NAME [--domain D]...    create a site
  atoll site list                           list sites
  atoll site update NAME [--max-bytes S]... change a site's retention and limits
  atoll site delete NAME                    delete a site and its deploys
  atoll deploy DIR --site NAME [--no-publish]
                                            upload DIR and publish it
  atoll deploys --site NAME                 list a site's deploys
  atoll rollback --site NAME DEPLOY         publish an earlier deploy again
  atoll token create --site NAME [--name N] make a deploy token for one site
  atoll token list                          list deploy tokens (never their secrets)
  atoll token revoke ID                     revoke a deploy token
  atoll token rotate-admin [--from-file F]  replace the admin token on every node (prints a generated one)
  atoll cert put --site S --domain D --cert F --key F
                                            store a custom domain's TLS certificate
  atoll cert list --site S                  list a site's certificates (never keys)
  atoll cert delete --site S --domain D     delete a domain's certificate
  atoll certs init --dir DIR --nodes A,B [--hosts H,...]
                                            make a CA and node certificates for --tls-*
  atoll snapshot save FILE                  back up the cluster's metadata to FILE
  atoll snapshot restore FILE               put the whole cluster's metadata back to FILE's
  atoll version                             print the release, commit, feature level and data format

Client commands talk to --api (env ATOLL_API, default http://127.0.0.1:9090)
with --token (env ATOLL_TOKEN; else the token file of ./atoll-data); for an
https API of a cluster with its own CA, --ca FILE (env ATOLL_CA).
Run 'atoll COMMAND -h' for a command's flags.
`

// errUsage marks an error whose message is a usage hint.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "atoll: "+err.Error())
		os.Exit(1)
	}
}

// Run executes one atoll command line.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: missing command", errUsage)
	}
	env := &cliEnv{stdout: stdout, stderr: stderr}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "server":
		return runServer(ctx, env, rest)
	case "status":
		return runStatus(ctx, env, rest)
	case "node":
		return runNode(ctx, env, rest)
	case "site":
		return runSite(ctx, env, rest)
	case "deploy":
		return runDeploy(ctx, env, rest)
	case "deploys":
		return runDeploys(ctx, env, rest)
	case "rollback":
		return runRollback(ctx, env, rest)
	case "token":
		return runToken(ctx, env, rest)
	case "cert":
		return runCert(ctx, env, rest)
	case "certs":
		return runCerts(ctx, env, rest)
	case "snapshot":
		return runSnapshot(ctx, env, rest)
	case "version", "--version":
		return runVersion(env) // version.go
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return fmt.Errorf("%w: unknown command %q (run 'atoll help')", errUsage, cmd)
	}
}
