package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/atoll-hosting/atoll/builder/client"
)

// cliEnv carries the output streams of one command line.
type cliEnv struct {
	stdout, stderr io.Writer
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(env *cliEnv, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: atoll %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseInterspersed parses flags that may come before, between or after the
// positional arguments ("atoll deploy DIR --site x") and returns the
// positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseArgs parses args and checks that exactly n positional arguments,
// described by what, remain.
func parseArgs(fs *flag.FlagSet, args []string, n int, what string) ([]string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != n {
		return nil, fmt.Errorf("%w: want %s, got %d argument(s)", errUsage, what, len(pos))
	}
	return pos, nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// envOr returns the environment variable ATOLL_<NAME> if set, else def.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv("ATOLL_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); ok {
		return v
	}
	return def
}

// clientFlags adds --api, --token and --ca to a client command's flag set.
type clientFlags struct {
	api, token, ca string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.api, "api", envOr("api", "http://127.0.0.1:9090"), "API URL of any node, or a comma-separated list tried in turn (env ATOLL_API)")
	fs.StringVar(&c.token, "token", envOr("token", ""), "API token (env ATOLL_TOKEN; default: the token file in $ATOLL_DATA or ./atoll-data)")
	fs.StringVar(&c.ca, "ca", envOr("ca", ""), "CA certificate (PEM) to trust for an https --api, e.g. the cluster's ca.pem (env ATOLL_CA)")
}

// parse registers --api and --token on fs, parses args, checks that
// exactly n positional arguments (described by what) remain, and returns
// them with a client.
func (c *clientFlags) parse(fs *flag.FlagSet, args []string, n int, what string) ([]string, *client.Client, error) {
	c.register(fs)
	pos, err := parseArgs(fs, args, n, what)
	if err != nil {
		return nil, nil, err
	}
	cl, err := c.client()
	if err != nil {
		return nil, nil, err
	}
	return pos, cl, nil
}

// client returns an API client. Without a token it falls back to the token
// file a local node wrote at bootstrap, which is what a developer running
// `make run` on the same machine wants.
func (c *clientFlags) client() (*client.Client, error) {
	token := c.token
	if token == "" {
		path := filepath.Join(envOr("data", "./atoll-data"), "token")
		if b, err := os.ReadFile(path); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	if token == "" {
		return nil, errors.New("no API token: pass --token or set ATOLL_TOKEN")
	}
	cl := client.New(normalizeAPI(c.api), token)
	if c.ca != "" {
		pem, err := os.ReadFile(c.ca)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		if err := cl.TrustCA(pem); err != nil {
			return nil, fmt.Errorf("--ca %s: %w", c.ca, err)
		}
	}
	return cl, nil
}

// httpClient returns a plain HTTP client that trusts --ca, for calls
// outside the API client (readiness polls).
func (c *clientFlags) httpClient() (*http.Client, error) {
	if c.ca == "" {
		return http.DefaultClient, nil
	}
	pem, err := os.ReadFile(c.ca)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca %s: no PEM certificate", c.ca)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

// normalizeAPI accepts "host:port" as well as a URL, and a comma-separated
// list of either (the client tries them in turn).
func normalizeAPI(api string) string {
	var out []string
	for _, a := range strings.Split(api, ",") {
		a = strings.TrimRight(strings.TrimSpace(a), "/")
		if a == "" {
			continue
		}
		if !strings.HasPrefix(a, "http://") && !strings.HasPrefix(a, "https://") {
			a = "http://" + a
		}
		out = append(out, a)
	}
	return strings.Join(out, ",")
}
