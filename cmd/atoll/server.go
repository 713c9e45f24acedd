package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/caddyserver/certmagic"

	"github.com/atoll-hosting/atoll/node"
)

// runServer runs a node until ctx is cancelled (SIGINT, SIGTERM).
func runServer(ctx context.Context, env *cliEnv, args []string) error {
	cfg, err := parseServerFlags(env, args)
	if err != nil {
		return err
	}
	n, err := node.Start(ctx, cfg)
	if err != nil {
		return err
	}
	stopHUP := reopenOnHUP(n) // logrotate: --access-log reopened on SIGHUP
	defer stopHUP()
	fmt.Fprintf(env.stdout, "atoll %s: node %s serving\n  api:  %s\n  edge: %s\n",
		version(), n.ID(), n.APIURL(), n.EdgeURL())
	if u := n.EdgeHTTPSURL(); u != "" {
		fmt.Fprintf(env.stdout, "  edge: %s\n", u)
	}
	<-ctx.Done()
	return n.Shutdown()
}

// parseServerFlags returns the node configuration of an `atoll server`
// command line: node.DefaultConfig, then the command line, then
// ATOLL_<NAME> for every flag the command line did not set (applyEnv),
// then the ranges checked.
func parseServerFlags(env *cliEnv, args []string) (node.Config, error) {
	cfg := node.DefaultConfig()
	cfg.Version = version()
	fs := newFlagSet(env, "server", "server [flags]  (each flag also as env ATOLL_<NAME>)")
	level := slog.LevelInfo
	format := logText
	declareNodeFlags(fs, &cfg, &level)
	declareObservabilityFlags(fs, &cfg, &format) // server_observe.go
	files := declareSecretFiles(fs, &cfg)
	declareStorageFlags(fs, &cfg) // server_storage.go
	declareLimitFlags(fs, &cfg)   // server_limits.go
	if _, err := parseArgs(fs, args, 0, "no arguments"); err != nil {
		return node.Config{}, err
	}
	if err := applyEnv(fs); err != nil {
		return node.Config{}, err
	}
	if err := files.read(); err != nil {
		return node.Config{}, err
	}
	if err := checkStorageFlags(fs); err != nil {
		return node.Config{}, err
	}
	if err := checkLimitFlags(fs); err != nil {
		return node.Config{}, err
	}
	cfg.Logger = format.logger(env.stderr, level)
	cfg.TokenOut = env.stderr
	return cfg, nil
}

// declareNodeFlags declares the flags of a node's identity, addresses,
// secrets, TLS files and replication, writing into cfg and level.
func declareNodeFlags(fs *flag.FlagSet, cfg *node.Config, level *slog.Level) {
	fs.StringVar(&cfg.ID, "id", cfg.ID, "node id (default: generated at first start and kept in the data dir)")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory")
	fs.StringVar(&cfg.Role, "role", cfg.Role, "core (Raft voter, blob owner) or edge (non-voter, serves)")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", cfg.RaftAddr, "Raft address, host:port")
	fs.StringVar(&cfg.APIAddr, "api-addr", cfg.APIAddr, "API address, host:port")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "edge (site serving) address, host:port")
	fs.StringVar(&cfg.Join, "join", cfg.Join, "API URL of a running node whose cluster this node joins")
	fs.StringVar(&cfg.FeedFrom, "feed-from", cfg.FeedFrom, "API URL of the node whose committed log this new edge follows as a fed edge, outside Raft (docs/FANOUT.md)")
	fs.IntVar(&cfg.MaxDirectEdges, "max-direct-edges", cfg.MaxDirectEdges, "edges the Raft leader feeds itself as non-voters; a new edge joining beyond them is fed by the relay with the fewest fed edges (docs/FANOUT.md)")
	fs.StringVar(&cfg.Domain, "domain", cfg.Domain, "sites answer at <site>.<domain>")
	fs.Var((*secret)(&cfg.AdminToken), "admin-token", "admin API `token` seeding the cluster's at bootstrap (default: generated into <data>/token); prefer --admin-token-file or env, a flag shows in ps")
	fs.Var((*secret)(&cfg.ClusterKey), "cluster-key", "`secret` shared by every node of the cluster; gates peer traffic (required to --join); prefer --cluster-key-file or env, a flag shows in ps")
	fs.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "this node's certificate (PEM): with --tls-key and --tls-ca, Raft and node-to-node calls use mutual TLS and the API serves HTTPS")
	fs.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "this node's private key (PEM)")
	fs.StringVar(&cfg.TLSCA, "tls-ca", cfg.TLSCA, "the cluster CA (PEM) every node's certificate must chain to")
	fs.StringVar(&cfg.HTTPSAddr, "https-addr", cfg.HTTPSAddr, "edge HTTPS address, host:port (default: none); certificates by SNI from 'atoll cert put'")
	fs.StringVar(&cfg.HTTPSCert, "https-cert", cfg.HTTPSCert, "default edge certificate (PEM) for names without an uploaded one, e.g. *.<domain>")
	fs.StringVar(&cfg.HTTPSKey, "https-key", cfg.HTTPSKey, "private key of --https-cert (PEM)")
	fs.BoolVar(&cfg.ACME, "acme", cfg.ACME, "with --https-addr, order and renew certificates for every custom domain from --acme-ca (ACME); --acme=false turns it off")
	fs.StringVar(&cfg.ACMECA, "acme-ca", cfg.ACMECA, "ACME directory `URL` (Let's Encrypt staging: "+certmagic.LetsEncryptStagingCA+")")
	fs.StringVar(&cfg.ACMECARoot, "acme-ca-root", cfg.ACMECARoot, "extra CA certificate (PEM `file`) to trust for the ACME server, for private CAs and tests")
	fs.StringVar(&cfg.ACMEEmail, "acme-email", cfg.ACMEEmail, "contact `email` of the ACME account (optional; the CA writes about expiring certificates)")
	fs.DurationVar(&cfg.ACMERenewCheck, "acme-renew-check", cfg.ACMERenewCheck, "how often each node looks for certificates to renew (renewal starts when a third of the lifetime is left)")
	fs.Var(notBool{&cfg.EdgeNetIO}, "edge-raw-io", "the plain-HTTP edge reads and writes with raw system calls (fewer thread switches per answer); --edge-raw-io=false uses Go's net package")
	fs.BoolVar(&cfg.ACMESiteHosts, "acme-site-hosts", cfg.ACMESiteHosts, "also order a certificate per site host <site>.<domain> (default: a wildcard from --https-cert covers them)")
	sizeVar(fs, &cfg.CacheSize, "cache-size", "`bytes` of blobs kept without owning them (read-through cache), e.g. 512MiB, 10GiB")
	sizeVar(fs, &cfg.EdgeIndexMemory, "edge-index-memory", "`bytes` of memory for the edge's indexes of large live deploys (0: none)")
	fs.IntVar(&cfg.EdgeIndexMinEntries, "edge-index-min-entries", cfg.EdgeIndexMinEntries, "a live deploy with more manifest `entries` than this gets an index, within --edge-index-memory")
	fs.DurationVar(&cfg.RepairInterval, "repair-interval", cfg.RepairInterval, "how often repair runs besides on membership changes")
	fs.BoolVar(&cfg.Bootstrap, "bootstrap", cfg.Bootstrap, "start a new cluster if the data dir is empty")
	fs.IntVar(&cfg.Replicas, "replicas", cfg.Replicas, "copies kept of every blob (capped by the number of core nodes)")
	fs.TextVar(level, "log-level", *level, "log `level`: debug, info, warn or error")
}

// secretFiles are the --*-file forms of the secret flags: a path on the
// command line instead of the secret, which `ps` and /proc/<pid>/cmdline
// would show.
type secretFiles struct {
	adminToken, clusterKey string
	cfg                    *node.Config
}

func declareSecretFiles(fs *flag.FlagSet, cfg *node.Config) *secretFiles {
	f := &secretFiles{cfg: cfg}
	fs.StringVar(&f.adminToken, "admin-token-file", "", "`file` holding --admin-token (surrounding whitespace ignored)")
	fs.StringVar(&f.clusterKey, "cluster-key-file", "", "`file` holding --cluster-key (surrounding whitespace ignored)")
	return f
}

// read fills the secrets from their files, once the command line and the
// environment are parsed. A secret given both ways is a usage error, as is
// an unreadable or empty file.
func (f *secretFiles) read() error {
	for _, s := range []struct {
		flag, file string
		dst        *string
	}{
		{"admin-token", f.adminToken, &f.cfg.AdminToken},
		{"cluster-key", f.clusterKey, &f.cfg.ClusterKey},
	} {
		if s.file == "" {
			continue
		}
		if *s.dst != "" {
			return fmt.Errorf("%w: give --%s or --%s-file, not both", errUsage, s.flag, s.flag)
		}
		b, err := os.ReadFile(s.file)
		if err != nil {
			return fmt.Errorf("%w: --%s-file: %v", errUsage, s.flag, err)
		}
		if *s.dst = strings.TrimSpace(string(b)); *s.dst == "" {
			return fmt.Errorf("%w: --%s-file %s: the file is empty", errUsage, s.flag, s.file)
		}
	}
	return nil
}

// notBool is a boolean flag that sets *p to its negation: a flag that is
// on by default for a Config field whose zero value is the default.
type notBool struct{ p *bool }

func (b notBool) String() string {
	if b.p == nil {
		return "false" // the zero Value, so that usage shows "(default true)"
	}
	return strconv.FormatBool(!*b.p)
}

func (b notBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*b.p = !v
	return nil
}

func (b notBool) IsBoolFlag() bool { return true }
