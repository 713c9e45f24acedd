package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll/node"
)

// runServer runs a node until ctx is cancelled (SIGINT, SIGTERM).
func runServer(ctx context.Context, env *cliEnv, args []string) error {
	cfg := node.DefaultConfig()
	cfg.Version = version
	fs := newFlagSet(env, "server", "server [flags]  (each flag also as env ATOLL_<NAME>)")
	str := func(p *string, name, usage string) {
		fs.StringVar(p, name, envOr(name, *p), usage)
	}
	str(&cfg.ID, "id", "node id (default: generated at first start and kept in the data dir)")
	str(&cfg.DataDir, "data", "data directory")
	str(&cfg.Role, "role", "core (Raft voter, blob owner) or edge (non-voter, serves)")
	str(&cfg.RaftAddr, "raft-addr", "Raft address, host:port")
	str(&cfg.APIAddr, "api-addr", "API address, host:port")
	str(&cfg.HTTPAddr, "http-addr", "edge (site serving) address, host:port")
	str(&cfg.Join, "join", "API URL of a running node whose cluster this node joins")
	str(&cfg.Domain, "domain", "sites answer at <site>.<domain>")
	str(&cfg.AdminToken, "admin-token", "admin API token (default: generated at bootstrap into <data>/token)")
	str(&cfg.ClusterKey, "cluster-key", "secret shared by every node of the cluster; gates peer traffic (required to --join)")
	str(&cfg.TLSCert, "tls-cert", "this node's certificate (PEM): with --tls-key and --tls-ca, Raft and node-to-node calls use mutual TLS and the API serves HTTPS")
	str(&cfg.TLSKey, "tls-key", "this node's private key (PEM)")
	str(&cfg.TLSCA, "tls-ca", "the cluster CA (PEM) every node's certificate must chain to")
	str(&cfg.HTTPSAddr, "https-addr", "edge HTTPS address, host:port (default: none); certificates by SNI from 'atoll cert put'")
	str(&cfg.HTTPSCert, "https-cert", "default edge certificate (PEM) for names without an uploaded one, e.g. *.<domain>")
	str(&cfg.HTTPSKey, "https-key", "private key of --https-cert (PEM)")
	cacheSize := envOr("cache-size", "1GiB")
	fs.StringVar(&cacheSize, "cache-size", cacheSize, "bytes of blobs kept without owning them (read-through cache), e.g. 512MiB, 10GiB")
	repair := envOr("repair-interval", cfg.RepairInterval.String())
	fs.StringVar(&repair, "repair-interval", repair, "how often repair runs besides on membership changes")
	storage := registerStorageFlags(fs, &cfg) // server_storage.go
	limits := registerLimitFlags(fs, &cfg)    // server_limits.go
	bootstrap, err := envBool("bootstrap")
	if err != nil {
		return err
	}
	fs.BoolVar(&cfg.Bootstrap, "bootstrap", bootstrap, "start a new cluster if the data dir is empty")
	replicas, err := envInt("replicas", cfg.Replicas)
	if err != nil {
		return err
	}
	fs.IntVar(&cfg.Replicas, "replicas", replicas, "copies kept of every blob (capped by the number of core nodes)")
	logLevel := envOr("log-level", "info")
	fs.StringVar(&logLevel, "log-level", logLevel, "debug, info, warn or error")
	if _, err := parseArgs(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	if cfg.CacheSize, err = parseBytes(cacheSize); err != nil {
		return fmt.Errorf("%w: --cache-size: %v", errUsage, err)
	}
	if cfg.RepairInterval, err = time.ParseDuration(repair); err != nil {
		return fmt.Errorf("%w: --repair-interval: %v", errUsage, err)
	}
	if err := storage.apply(&cfg); err != nil {
		return err
	}
	if err := limits.apply(); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("%w: --log-level %q", errUsage, logLevel)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level}))
	cfg.TokenOut = env.stderr

	n, err := node.Start(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "atoll %s: node %s serving\n  api:  %s\n  edge: %s\n",
		version, n.ID(), n.APIURL(), n.EdgeURL())
	if u := n.EdgeHTTPSURL(); u != "" {
		fmt.Fprintf(env.stdout, "  edge: %s\n", u)
	}
	<-ctx.Done()
	return n.Shutdown()
}

// parseBytes reads a size such as 1048576, 512MiB, 10GiB or 2GB.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size such as 512MiB or 10GiB", s)
	}
	return n * mult, nil
}

func envBool(name string) (bool, error) {
	v := envOr(name, "")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%w: ATOLL_%s=%q is not a boolean", errUsage, name, v)
	}
	return b, nil
}

func envInt(name string, def int) (int, error) {
	v := envOr(name, "")
	if v == "" {
		return def, nil
	}
	i, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%w: ATOLL_%s=%q is not a number", errUsage, name, v)
	}
	return i, nil
}
