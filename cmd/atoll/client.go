package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/atoll-hosting/atoll/builder/client"
)

// clientFlags are the flags every client command has: --api, --token and
// --ca, each also read from ATOLL_API, ATOLL_TOKEN and ATOLL_CA.
type clientFlags struct {
	api, token, ca string
}

// clientEnv names the client flags the environment pass applies to: a
// client command's other flags (--site, --domain, ...) do not read the
// environment, where a server's ATOLL_DOMAIN may well be set.
var clientEnv = []string{"api", "token", "ca"}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.api, "api", "http://127.0.0.1:9090", "API URL of any node, or a comma-separated list tried in turn (env ATOLL_API)")
	fs.Var((*secret)(&c.token), "token", "API `token` (env ATOLL_TOKEN; default: the token file in $ATOLL_DATA or ./atoll-data)")
	fs.StringVar(&c.ca, "ca", "", "CA certificate (PEM) to trust for an https --api, e.g. the cluster's ca.pem (env ATOLL_CA)")
}

// parseFlags registers the client flags on fs, parses args and the
// environment, and checks that exactly n positional arguments (described
// by what) remain.
func (c *clientFlags) parseFlags(fs *flag.FlagSet, args []string, n int, what string) ([]string, error) {
	c.register(fs)
	pos, err := parseArgs(fs, args, n, what)
	if err != nil {
		return nil, err
	}
	if err := applyEnv(fs, clientEnv...); err != nil {
		return nil, err
	}
	return pos, nil
}

// parse is parseFlags, and returns the positional arguments with a client.
func (c *clientFlags) parse(fs *flag.FlagSet, args []string, n int, what string) ([]string, *client.Client, error) {
	pos, err := c.parseFlags(fs, args, n, what)
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
		dataDir, ok := envValue("data")
		if !ok {
			dataDir = "./atoll-data"
		}
		if b, err := os.ReadFile(filepath.Join(dataDir, "token")); err == nil {
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
