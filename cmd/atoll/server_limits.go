package main

import (
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/atoll-hosting/atoll/node"
)

// limitFlags are the `atoll server` flags of the API's and the edge's
// timeouts and size limits (node/limits.go explains each). Every one also
// reads ATOLL_<NAME>.
type limitFlags struct {
	parsers []func() error
}

func registerLimitFlags(fs *flag.FlagSet, cfg *node.Config) *limitFlags {
	f := &limitFlags{}
	size := func(p *int64, name, usage string) {
		v := fs.String(name, envOr(name, formatBytes(*p)), usage)
		f.parsers = append(f.parsers, func() (err error) {
			if *p, err = parseBytes(*v); err != nil || *p == 0 {
				return fmt.Errorf("%w: --%s %q: want a positive size such as 64KiB", errUsage, name, *v)
			}
			return nil
		})
	}
	dur := func(p *time.Duration, name, usage string) {
		v := fs.String(name, envOr(name, p.String()), usage)
		f.parsers = append(f.parsers, func() (err error) {
			if *p, err = time.ParseDuration(*v); err != nil || *p <= 0 {
				return fmt.Errorf("%w: --%s %q: want a positive duration such as 30s", errUsage, name, *v)
			}
			return nil
		})
	}
	num := func(p *int, name string, zeroOK bool, usage string) {
		v := fs.String(name, envOr(name, strconv.Itoa(*p)), usage)
		f.parsers = append(f.parsers, func() (err error) {
			if *p, err = strconv.Atoi(*v); err != nil || *p < 0 || *p == 0 && !zeroOK {
				return fmt.Errorf("%w: --%s %q: want a positive number", errUsage, name, *v)
			}
			return nil
		})
	}
	intSize := func(p *int, name, usage string) {
		n := int64(*p)
		size(&n, name, usage)
		parse := f.parsers[len(f.parsers)-1]
		f.parsers[len(f.parsers)-1] = func() error {
			if err := parse(); err != nil {
				return err
			}
			if n > 1<<30 {
				return fmt.Errorf("%w: --%s: at most 1GiB", errUsage, name)
			}
			*p = int(n)
			return nil
		}
	}

	num(&cfg.MaxFiles, "max-files", false, "files one deploy may hold (more: 413)")
	size(&cfg.MaxJSONBytes, "max-manifest-bytes", "size of a deploy's manifest, and of any JSON request body (more: 413)")
	size(&cfg.MaxBlobBytes, "max-blob-bytes", "size of one file of a deploy (more: 413)")
	size(&cfg.MaxTarBytes, "max-tar-bytes", "size of a one-shot tar upload, as sent and unpacked (more: 413)")

	dur(&cfg.APIReadHeaderTimeout, "api-read-header-timeout", "time a client has to send an API request's line and headers")
	dur(&cfg.APIReadTimeout, "api-read-timeout", "time an API request body may take on top of its size / --api-min-rate")
	dur(&cfg.APIWriteTimeout, "api-write-timeout", "time each API response write may take on top of its size / --api-min-rate")
	size(&cfg.APIMinRate, "api-min-rate", "bytes per second API bodies must keep up, both ways, e.g. 16KiB")
	dur(&cfg.APIIdleTimeout, "api-idle-timeout", "how long an idle keep-alive API connection stays open")
	intSize(&cfg.APIMaxHeaderBytes, "api-max-header-bytes", "size of an API request's headers (more: 431)")

	dur(&cfg.EdgeReadTimeout, "edge-read-timeout", "time a visitor has to send a whole request (line and headers: the edge takes no body)")
	dur(&cfg.EdgeWriteTimeout, "edge-write-timeout", "time the edge has to send a whole response")
	dur(&cfg.EdgeIdleTimeout, "edge-idle-timeout", "how long an idle keep-alive edge connection stays open")
	intSize(&cfg.EdgeMaxHeaderBytes, "edge-max-header-bytes", "size of an edge request's headers (more: 431)")
	num(&cfg.EdgeConcurrency, "edge-concurrency", false, "connections the edge serves at once (more: 503)")
	num(&cfg.EdgeMaxConnsPerIP, "edge-max-conns-per-ip", true, "connections one client address may hold on the edge; 0: no limit")
	return f
}

// apply parses the flags into the config they were registered with.
func (f *limitFlags) apply() error {
	for _, parse := range f.parsers {
		if err := parse(); err != nil {
			return err
		}
	}
	return nil
}

// formatBytes writes a size the way parseBytes reads it, in the largest
// binary unit that divides it.
func formatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
