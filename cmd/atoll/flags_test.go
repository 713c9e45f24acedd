package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/node"
)

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "0", want: 0},
		{in: "1048576", want: 1 << 20},
		{in: "512MiB", want: 512 << 20},
		{in: "10GiB", want: 10 << 30},
		{in: "2GB", want: 2e9},
		{in: "64 KiB", want: 64 << 10},
		{in: "7B", want: 7},
		{in: "", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "lots", wantErr: true},
		{in: "1.5GiB", wantErr: true},
		{in: "9999999TiB", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseBytes(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseBytes(%q) = %d, %v; want error: %v", tt.in, got, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseBytes(%q) = %d, want %d", tt.in, got, tt.want)
			}
			if err == nil {
				if back, err := parseBytes(formatBytes(got)); err != nil || back != got {
					t.Errorf("parseBytes(formatBytes(%d) = %q) = %d, %v; want it back", got, formatBytes(got), back, err)
				}
			}
		})
	}
}

// parseServer runs the server's flag parsing on args with env set, and
// returns the configuration, what was printed and the error.
func parseServer(t *testing.T, env map[string]string, args ...string) (node.Config, string, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out bytes.Buffer
	cfg, err := parseServerFlags(&cliEnv{stdout: &out, stderr: &out}, args)
	return cfg, out.String(), err
}

func TestServerFlagsAndEnv(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		check func(cfg node.Config) string // what is wrong, or ""
	}{
		{
			name: "defaults without flags or env",
			check: func(cfg node.Config) string {
				want := node.DefaultConfig()
				if cfg.CacheSize != want.CacheSize || cfg.Replicas != want.Replicas || cfg.RaftTimeout != 0 || cfg.MaxBlobBytes != want.MaxBlobBytes {
					return "a default changed"
				}
				return ""
			},
		},
		{
			name: "a size from the environment",
			env:  map[string]string{"ATOLL_CACHE_SIZE": "512MiB", "ATOLL_MAX_BLOB_BYTES": "1GB"},
			check: func(cfg node.Config) string {
				if cfg.CacheSize != 512<<20 || cfg.MaxBlobBytes != 1e9 {
					return "cache size or max blob bytes not taken from ATOLL_*"
				}
				return ""
			},
		},
		{
			name: "the command line beats the environment",
			env:  map[string]string{"ATOLL_REPLICAS": "5", "ATOLL_DATA": "/env"},
			args: []string{"--replicas", "2", "--data=/flag"},
			check: func(cfg node.Config) string {
				if cfg.Replicas != 2 || cfg.DataDir != "/flag" {
					return "the environment overrode a flag"
				}
				return ""
			},
		},
		{
			name: "an empty variable counts as unset",
			env:  map[string]string{"ATOLL_REPLICAS": "", "ATOLL_BOOTSTRAP": "", "ATOLL_DATA": ""},
			check: func(cfg node.Config) string {
				if cfg.Replicas != 3 || cfg.Bootstrap || cfg.DataDir != "./atoll-data" {
					return "an empty variable was applied"
				}
				return ""
			},
		},
		{
			name: "bool, duration, secret and log level from the environment",
			env: map[string]string{"ATOLL_BOOTSTRAP": "true", "ATOLL_RAFT_TIMEOUT": "250ms", "ATOLL_ADMIN_TOKEN": "s3cret",
				"ATOLL_CLUSTER_KEY": "k3y", "ATOLL_LOG_LEVEL": "debug", "ATOLL_EDGE_MAX_HEADER_BYTES": "16KiB"},
			check: func(cfg node.Config) string {
				switch {
				case !cfg.Bootstrap || cfg.RaftTimeout != 250*time.Millisecond:
					return "bootstrap or raft timeout not applied"
				case cfg.AdminToken != "s3cret" || cfg.ClusterKey != "k3y":
					return "a secret not applied"
				case !cfg.Logger.Enabled(context.Background(), slog.LevelDebug):
					return "log level not applied"
				case cfg.EdgeMaxHeaderBytes != 16<<10:
					return "an int size not applied"
				}
				return ""
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, out, err := parseServer(t, tt.env, tt.args...)
			if err != nil {
				t.Fatalf("parseServerFlags(%q) with %v: %v\n%s", tt.args, tt.env, err, out)
			}
			if what := tt.check(cfg); what != "" {
				t.Errorf("%s: got %+v", what, cfg)
			}
		})
	}
}

func TestServerFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // in the error
	}{
		{name: "a bad size on the command line", args: []string{"--cache-size", "lots"}, want: `invalid value "lots" for flag -cache-size`},
		{name: "a bad size in the environment names flag and variable", env: map[string]string{"ATOLL_CACHE_SIZE": "lots"},
			want: `invalid value "lots" for flag -cache-size (from ATOLL_CACHE_SIZE)`},
		{name: "a bad bool in the environment", env: map[string]string{"ATOLL_BOOTSTRAP": "maybe"}, want: "-bootstrap (from ATOLL_BOOTSTRAP)"},
		{name: "a bad number in the environment", env: map[string]string{"ATOLL_REPLICAS": "three"}, want: "-replicas (from ATOLL_REPLICAS)"},
		{name: "a bad log level", args: []string{"--log-level", "loud"}, want: "-log-level"},
		{name: "a zero limit", args: []string{"--max-files", "0"}, want: "--max-files 0: want a positive number"},
		{name: "a zero size from the environment", env: map[string]string{"ATOLL_SCRUB_RATE": "0"}, want: "--scrub-rate 0: want a positive size"},
		{name: "a zero timeout", args: []string{"--edge-read-timeout", "0s"}, want: "--edge-read-timeout 0s: want a positive duration"},
		{name: "a raft flag given as zero", args: []string{"--raft-trailing-logs", "0"}, want: "--raft-trailing-logs 0: want a positive number"},
		{name: "a header limit above 1GiB", args: []string{"--api-max-header-bytes", "2GiB"}, want: "--api-max-header-bytes 2GiB: want at most 1GiB"},
		{name: "a per-address limit below -1", args: []string{"--edge-max-conns-per-ip", "-2"}, want: "--edge-max-conns-per-ip -2"},
		{name: "a negative edge concurrency", args: []string{"--edge-concurrency", "-1"}, want: "--edge-concurrency -1"},
		{name: "compress workers below -1", args: []string{"--compress-workers", "-2"}, want: "--compress-workers -2: want -1 (none)"},
		{name: "a positional argument", args: []string{"extra"}, want: "want no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseServer(t, tt.env, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("parseServerFlags(%q) with %v: error %v, want one containing %q", tt.args, tt.env, err, tt.want)
			}
			if !errors.Is(err, errUsage) {
				t.Errorf("error %v is not a usage error", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q has more than one line", err)
			}
		})
	}
}

// TestServerFlagsAllowedZero checks the zeros that mean something: edge
// connection limits fit to the descriptor limit, no reserve, no cache, and
// node's Raft defaults; and -1, no per-address limit and no background
// compression.
func TestServerFlagsAllowedZero(t *testing.T) {
	cfg, out, err := parseServer(t, nil, "--edge-concurrency", "0", "--min-free", "0", "--cache-size", "0")
	if err != nil {
		t.Fatalf("parseServerFlags: %v\n%s", err, out)
	}
	if cfg.EdgeConcurrency != 0 || cfg.MinFreeBytes != 0 || cfg.CacheSize != 0 || cfg.RaftSnapshotThreshold != 0 {
		t.Errorf("got %+v, want the zeros kept", cfg)
	}
	cfg, out, err = parseServer(t, nil, "--edge-max-conns-per-ip", "-1")
	if err != nil {
		t.Fatalf("parseServerFlags: %v\n%s", err, out)
	}
	if cfg.EdgeMaxConnsPerIP != node.NoConnLimit {
		t.Errorf("--edge-max-conns-per-ip -1: got %d, want node.NoConnLimit", cfg.EdgeMaxConnsPerIP)
	}
	cfg, out, err = parseServer(t, map[string]string{"ATOLL_COMPRESS_WORKERS": "-1"})
	if err != nil {
		t.Fatalf("parseServerFlags: %v\n%s", err, out)
	}
	if cfg.CompressWorkers != -1 {
		t.Errorf("ATOLL_COMPRESS_WORKERS=-1: got %d, want -1 (no background compression)", cfg.CompressWorkers)
	}
}

func TestClientFlagsEnv(t *testing.T) {
	tests := []struct {
		name                   string
		env                    map[string]string
		args                   []string
		wantAPI, wantToken, ca string
		wantSite               string
	}{
		{name: "defaults", wantAPI: "http://127.0.0.1:9090"},
		{name: "from the environment", env: map[string]string{"ATOLL_API": "10.0.0.1:9090", "ATOLL_TOKEN": "t0k", "ATOLL_CA": "/ca.pem"},
			wantAPI: "10.0.0.1:9090", wantToken: "t0k", ca: "/ca.pem"},
		{name: "the command line beats the environment", env: map[string]string{"ATOLL_API": "env:1", "ATOLL_TOKEN": "env"},
			args: []string{"--api", "flag:1", "--token=flag"}, wantAPI: "flag:1", wantToken: "flag"},
		{name: "an empty ATOLL_CA means no CA", env: map[string]string{"ATOLL_CA": ""}, wantAPI: "http://127.0.0.1:9090"},
		{name: "other client flags do not read the environment", env: map[string]string{"ATOLL_SITE": "blog"}, wantAPI: "http://127.0.0.1:9090"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var cf clientFlags
			fs := newFlagSet(&cliEnv{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}, "test", "test")
			site := fs.String("site", "", "site")
			if _, err := cf.parseFlags(fs, tt.args, 0, "no arguments"); err != nil {
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			}
			if cf.api != tt.wantAPI || cf.token != tt.wantToken || cf.ca != tt.ca || *site != tt.wantSite {
				t.Errorf("got api %q token %q ca %q site %q, want %q %q %q %q",
					cf.api, cf.token, cf.ca, *site, tt.wantAPI, tt.wantToken, tt.ca, tt.wantSite)
			}
		})
	}
}

// TestSecretsNeverPrinted runs every command's help and a bad flag the way
// main does, with the secrets in the environment and, for the server, on
// the command line too: the usage text must show none of them.
func TestSecretsNeverPrinted(t *testing.T) {
	const marker = "MARKER-s3cr3t-0123456789"
	for _, name := range []string{"ATOLL_TOKEN", "ATOLL_ADMIN_TOKEN", "ATOLL_CLUSTER_KEY"} {
		t.Setenv(name, marker)
	}
	t.Setenv("ATOLL_DATA", t.TempDir())
	commands := [][]string{
		{"server"}, {"status"}, {"deploy"}, {"deploys"}, {"rollback"},
		{"node", "list"}, {"node", "join"}, {"node", "drain"}, {"node", "remove"}, {"node", "scrub"},
		{"site", "create"}, {"site", "list"}, {"site", "delete"},
		{"token", "create"}, {"token", "list"}, {"token", "revoke"},
		{"cert", "put"}, {"cert", "list"}, {"cert", "delete"},
		{"certs", "init"}, {"snapshot", "save"}, {"snapshot", "restore"},
	}
	var lines [][]string
	for _, c := range commands {
		lines = append(lines, append(c[:len(c):len(c)], "-h"), append(c[:len(c):len(c)], "--bogus"))
	}
	lines = append(lines,
		[]string{"server", "--admin-token", marker, "--cluster-key", marker, "-h"},
		[]string{"deploy", "--token", marker, "-h"},
		[]string{}, []string{"help"})
	for _, args := range lines {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out bytes.Buffer
			err := Run(t.Context(), args, &out, &out)
			if err == nil && len(args) > 0 && args[0] != "help" {
				t.Fatalf("atoll %s: no error, want help or a usage error", strings.Join(args, " "))
			}
			printed := out.String()
			if err != nil {
				printed += "\natoll: " + err.Error()
			}
			if strings.Contains(printed, marker) {
				t.Errorf("atoll %s printed a secret:\n%s", strings.Join(args, " "), printed)
			}
			if len(args) > 1 && !strings.Contains(printed, "Usage: atoll") {
				t.Errorf("atoll %s printed no usage, so the check above saw nothing:\n%s", strings.Join(args, " "), printed)
			}
		})
	}
}

// TestServerUsageListsEveryFlag checks that `atoll server -h` prints every
// flag as a "  -name" line, which the check that docs/CONFIG.md documents
// every flag reads.
func TestServerUsageListsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	err := runServer(t.Context(), &cliEnv{stdout: &out, stderr: &out}, []string{"-h"})
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("runServer -h: %v, want flag.ErrHelp", err)
	}
	cfg := node.DefaultConfig()
	level := slog.LevelInfo
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	declareNodeFlags(fs, &cfg, &level)
	declareStorageFlags(fs, &cfg)
	declareLimitFlags(fs, &cfg)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !strings.Contains(out.String(), "\n  -"+f.Name+" ") && !strings.Contains(out.String(), "\n  -"+f.Name+"\n") {
			t.Errorf("atoll server -h has no line for -%s", f.Name)
		}
	})
	if n < 40 {
		t.Errorf("%d server flags declared, want the 40 or more of the README", n)
	}
}

func TestRequireFlags(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		required []string
		want     string // the error, "" for none
	}{
		{name: "one given", args: []string{"--site", "blog"}, required: []string{"site"}},
		{name: "one missing", required: []string{"site"}, want: "usage: --site is required"},
		{name: "two, one missing", args: []string{"--site", "blog"}, required: []string{"site", "domain"}, want: "usage: --site and --domain are required"},
		{name: "four, all missing", required: []string{"site", "domain", "cert", "key"}, want: "usage: --site, --domain, --cert and --key are required"},
		{name: "an empty value counts as missing", args: []string{"--site="}, required: []string{"site"}, want: "usage: --site is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			for _, name := range []string{"site", "domain", "cert", "key"} {
				fs.String(name, "", name)
			}
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got := ""
			if err := requireFlags(fs, tt.required...); err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("requireFlags(%q) after %q: got %q, want %q", tt.required, tt.args, got, tt.want)
			}
		})
	}
}

// TestServerSecretFiles: --admin-token-file and --cluster-key-file (or
// their variables) fill the secrets, trimmed; a secret given both ways, an
// empty file or a missing one is a one-line usage error naming the flag.
func TestServerSecretFiles(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	token, key, empty := file("token", "  s3cret-token\n"), file("key", "k3y\n"), file("empty", "\n")

	cfg, _, err := parseServer(t, map[string]string{"ATOLL_CLUSTER_KEY_FILE": key}, "--admin-token-file", token)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdminToken != "s3cret-token" || cfg.ClusterKey != "k3y" {
		t.Errorf("got admin token %q, cluster key %q; want the files' trimmed content", cfg.AdminToken, cfg.ClusterKey)
	}
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{name: "both ways", args: []string{"--admin-token", "x", "--admin-token-file", token}, want: "give --admin-token or --admin-token-file, not both"},
		{name: "both ways, one from the environment", env: map[string]string{"ATOLL_CLUSTER_KEY": "x"}, args: []string{"--cluster-key-file", key},
			want: "give --cluster-key or --cluster-key-file, not both"},
		{name: "an empty file", args: []string{"--cluster-key-file", empty}, want: "--cluster-key-file " + empty + ": the file is empty"},
		{name: "a missing file", args: []string{"--admin-token-file", filepath.Join(dir, "none")}, want: "--admin-token-file: open"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseServer(t, tt.env, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, errUsage) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %v, want one usage line containing %q", err, tt.want)
			}
		})
	}
}
