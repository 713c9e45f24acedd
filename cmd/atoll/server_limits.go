package main

import (
	"flag"

	"github.com/atoll-hosting/atoll/node"
)

// declareLimitFlags declares the `atoll server` flags of the API's and the
// edge's timeouts and size limits (node/limits.go explains each; the
// docs/CONFIG.md's "Limits and timeouts" table is their contract).
func declareLimitFlags(fs *flag.FlagSet, cfg *node.Config) {
	fs.IntVar(&cfg.MaxFiles, "max-files", cfg.MaxFiles, "files one deploy may hold (more: 413)")
	sizeVar(fs, &cfg.MaxJSONBytes, "max-manifest-bytes", "`size` of a deploy's manifest, and of any JSON request body (more: 413)")
	sizeVar(fs, &cfg.MaxBlobBytes, "max-blob-bytes", "`size` of one file of a deploy (more: 413)")
	sizeVar(fs, &cfg.MaxTarBytes, "max-tar-bytes", "`size` of a one-shot tar upload, as sent and unpacked (more: 413)")
	sizeVar(fs, &cfg.SiteMaxBytes, "site-max-bytes", "`size` of the files of one deploy of a site, unless an admin set the site's own (more: 413)")
	fs.IntVar(&cfg.SiteMaxUploading, "site-max-uploading", cfg.SiteMaxUploading, "deploys one site may have uploading at once, unless an admin set the site's own (more: 429)")
	fs.DurationVar(&cfg.DeployExpiry, "deploy-expiry", cfg.DeployExpiry, "how long a deploy may stay uploading before it fails and its blobs become collectable")

	fs.DurationVar(&cfg.APIReadHeaderTimeout, "api-read-header-timeout", cfg.APIReadHeaderTimeout, "time a client has to send an API request's line and headers")
	fs.DurationVar(&cfg.APIReadTimeout, "api-read-timeout", cfg.APIReadTimeout, "time an API request body may take on top of its size / --api-min-rate")
	fs.DurationVar(&cfg.APIWriteTimeout, "api-write-timeout", cfg.APIWriteTimeout, "time each API response write may take on top of its size / --api-min-rate")
	sizeVar(fs, &cfg.APIMinRate, "api-min-rate", "`bytes` per second API bodies must keep up, both ways, e.g. 16KiB")
	fs.DurationVar(&cfg.APIIdleTimeout, "api-idle-timeout", cfg.APIIdleTimeout, "how long an idle keep-alive API connection stays open")
	sizeVar(fs, &cfg.APIMaxHeaderBytes, "api-max-header-bytes", "`size` of an API request's headers (more: 431)")

	fs.DurationVar(&cfg.EdgeReadTimeout, "edge-read-timeout", cfg.EdgeReadTimeout, "time a visitor has to send a whole request (line and headers: the edge takes no body)")
	fs.DurationVar(&cfg.EdgeWriteTimeout, "edge-write-timeout", cfg.EdgeWriteTimeout, "time the edge has to send a whole response")
	fs.DurationVar(&cfg.EdgeIdleTimeout, "edge-idle-timeout", cfg.EdgeIdleTimeout, "how long an idle keep-alive edge connection stays open")
	sizeVar(fs, &cfg.EdgeMaxHeaderBytes, "edge-max-header-bytes", "`size` of an edge request's headers (more: 431)")
	fs.IntVar(&cfg.EdgeConcurrency, "edge-concurrency", cfg.EdgeConcurrency, "connections the edge serves at once (more: 503); 0: fit to the descriptor limit")
	fs.IntVar(&cfg.EdgeMaxConnsPerIP, "edge-max-conns-per-ip", cfg.EdgeMaxConnsPerIP, "connections one client address may hold on the edge; 0: fit to the descriptor limit, -1: no limit")
}

// maxHeaderBytes is the largest value the header size flags take.
const maxHeaderBytes = 1 << 30

// checkLimitFlags checks the ranges of the limit flags once the command
// line and the environment are applied.
func checkLimitFlags(fs *flag.FlagSet) error {
	if err := checkPositive(fs, "max-files", "max-manifest-bytes", "max-blob-bytes", "max-tar-bytes",
		"site-max-bytes", "site-max-uploading", "deploy-expiry",
		"api-read-header-timeout", "api-read-timeout", "api-write-timeout", "api-min-rate", "api-idle-timeout", "api-max-header-bytes",
		"edge-read-timeout", "edge-write-timeout", "edge-idle-timeout", "edge-max-header-bytes", "edge-index-min-entries"); err != nil {
		return err
	}
	for _, name := range []string{"api-max-header-bytes", "edge-max-header-bytes"} {
		n, _ := numberOf(fs.Lookup(name).Value)
		if err := checkRange(fs, name, n <= maxHeaderBytes, "at most 1GiB"); err != nil {
			return err
		}
	}
	n, _ := numberOf(fs.Lookup("edge-concurrency").Value)
	if err := checkRange(fs, "edge-concurrency", n >= 0, "a number of connections, 0 to fit the descriptor limit"); err != nil {
		return err
	}
	n, _ = numberOf(fs.Lookup("edge-max-conns-per-ip").Value)
	return checkRange(fs, "edge-max-conns-per-ip", n >= -1, "a number of connections, 0 to fit the descriptor limit, -1 for no limit")
}
