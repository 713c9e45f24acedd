package main

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

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
	<-ctx.Done()
	return n.Close()
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
