package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/atoll-hosting/atoll/bench/benchkit"
)

// results is everything one run measured; it is written as JSON and as a
// markdown table.
type results struct {
	Started  time.Time       `json:"started"`
	Elapsed  string          `json:"elapsed"`
	Quick    bool            `json:"quick"`
	Commit   string          `json:"commit"`
	Machine  machine         `json:"machine"`
	Params   params          `json:"params"`
	Site     siteSummary     `json:"site"`
	DiskMBps float64         `json:"disk_mb_s"`
	Deploy   *deployResult   `json:"deploy,omitempty"`
	Serve    *serveResult    `json:"serve,omitempty"`
	Rules    *pairResult     `json:"rules,omitempty"`
	Meta     *metaResult     `json:"meta,omitempty"`
	Cluster  *clusterResult  `json:"cluster,omitempty"`
	Ingest   *ingestResult   `json:"ingest,omitempty"`
	Metrics  *pairResult     `json:"metrics,omitempty"`
	Redeploy *redeployResult `json:"redeploy,omitempty"`
}

type params struct {
	Rounds    int    `json:"rounds"`
	Duration  string `json:"duration"`
	Threads   int    `json:"threads"`
	Conns     int    `json:"conns"`
	TextFiles int    `json:"text_files"`
	BinFiles  int    `json:"binary_files"`
	MetaFiles int    `json:"meta_files"`
	Seed      uint64 `json:"seed"`
}

// verdict says whether a target is met.
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func (r *results) markdown() string {
	var b strings.Builder
	r.writeHeader(&b)
	r.writeSections(&b)
	r.writeTargets(&b)
	fmt.Fprintf(&b, "\nRun time %s.\n", r.Elapsed)
	return b.String()
}

// writeHeader writes the title, the machine and the site.
func (r *results) writeHeader(b *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	mode := "full"
	if r.Quick {
		mode = "quick"
	}
	p("## Atoll vs nginx, %s run of %s (%s)\n\n", mode, r.Started.Format("2006-01-02 15:04 MST"), r.Commit)
	p("Machine: %d cores, %s, %s RAM, Linux %s, %s, nginx %s, wrk %s; load average at start %s.\n",
		r.Machine.Cores, r.Machine.CPU, benchkit.Human(r.Machine.MemBytes), r.Machine.Kernel, r.Machine.Go, r.Machine.Nginx, r.Machine.Wrk, r.Machine.Load)
	p("Site: %d files, %s (%d text files of 1-30 KiB, %d binaries of 100 KiB-5 MiB), seed %d.",
		r.Site.Files, benchkit.Human(r.Site.Bytes), r.Site.TextFiles, r.Site.BinFiles, r.Params.Seed)
	if r.DiskMBps > 0 { // measured only for the sections that write
		p(" Disk: %.0f MB/s with fdatasync per 1 MiB write.", r.DiskMBps)
	}
	p("\n\n")
}

// writeSections writes the figures of each section that ran.
func (r *results) writeSections(b *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	if s := r.Serve; s != nil {
		p("### Hot serving (wrk -t%d -c%d, keep-alive, %s x %d alternating rounds, medians)\n\n", s.Threads, s.Conns, s.Duration, s.Rounds)
		p("| case | Atoll req/s | nginx req/s | Atoll/nginx | server CPU µs/req, Atoll / nginx | Atoll p50 | nginx p50 | Atoll p99 | nginx p99 | encoding Atoll / nginx (bytes) |\n")
		p("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
		for _, c := range s.Cases {
			enc := func(e string) string {
				if e == "" {
					return "identity"
				}
				return e
			}
			p("| %s | %.0f | %.0f | **%.2fx** | %.1f / %.1f (%.2fx) | %s | %s | %s | %s | %s (%d) / %s (%d) |\n", c.Name, c.AtollRPS, c.NginxRPS, c.Ratio,
				c.AtollCPU, c.NginxCPU, c.AtollCPU/c.NginxCPU, us(c.AtollP50), us(c.NginxP50), us(c.AtollP99), us(c.NginxP99),
				enc(c.Encoding.Atoll), c.BodyBytes.Atoll, enc(c.Encoding.Nginx), c.BodyBytes.Nginx)
		}
		p("\n")
	}
	if rr := r.Rules; rr != nil {
		p("### Site rules: 10,000 static + 100 dynamic redirects, %d _headers blocks (wrk -t%d -c%d, %s x %d alternating rounds, medians)\n\n", headerBlocks, rr.Threads, rr.Conns, rr.Duration, rr.Rounds)
		pairTable(b, rr)
	}
	if m := r.Metrics; m != nil {
		p("### Metrics overhead: this binary against one built without metrics\n\n")
		if len(m.Cases) == 0 {
			p("%s.\n\n", m.Note)
		} else {
			p("wrk -t%d -c%d, %s x %d alternating rounds, medians; %s.\n\n", m.Threads, m.Conns, m.Duration, m.Rounds, m.Note)
			pairTable(b, m)
		}
	}
	if d := r.Deploy; d != nil {
		p("### Deploy, one node (CLI end to end)\n\n")
		deployTable(b, d)
	}
	r.writeMeta(b)
	r.writeRedeploy(b)
	r.writeIngest(b)
	if c := r.Cluster; c != nil {
		p("### Cluster, 3 core + 1 edge on loopback\n\n")
		if c.Skipped != "" {
			p("Skipped: %s.\n\n", c.Skipped)
		} else {
			if c.Deploy != nil {
				deployTable(b, c.Deploy)
			}
			p("| figure | value |\n| --- | ---: |\n")
			p("| publish propagation to all 4 nodes, p50 / p99 (%d publishes) | %.1f ms / %.1f ms |\n", len(c.PropagationMs), c.PropagationP50Ms, c.PropagationP99Ms)
			p("| publish API call p50 / p99 | %.1f ms / %.1f ms |\n", c.PublishCallP50Ms, c.PublishCallP99Ms)
			p("| edge cold miss p50 / p99 (%d files of 16 KiB) | %.2f ms / %.2f ms |\n", c.ColdFiles, c.ColdP50Ms, c.ColdP99Ms)
			p("| edge hot p50 / p99, same files | %.2f ms / %.2f ms |\n", c.HotP50Ms, c.HotP99Ms)
			p("| cold-miss overhead at p50 | %.2f ms |\n\n", c.ColdOverheadP50)
		}
	}
}

// writeTargets writes the verdict of every target the run measured.
func (r *results) writeTargets(b *strings.Builder) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("### Targets\n\n| target | measured | verdict |\n| --- | --- | --- |\n")
	if s := r.Serve; s != nil {
		for _, name := range []string{caseSmall, caseMedium} {
			if c := s.byName(name); c != nil {
				p("| hot serving %s: req/s >= 1.0x nginx (aim 1.3x) | %.2fx | %s |\n", c.Name, c.Ratio, verdict(c.Ratio >= 1))
				p("| hot serving %s: p99 no worse than nginx | %s vs %s | %s |\n", c.Name, us(c.AtollP99), us(c.NginxP99), verdict(c.AtollP99 <= c.NginxP99))
			}
		}
		if c := s.byName(caseBrotli); c != nil {
			p("| compressed serving (br vs gzip_static) >= 1.0x | %.2fx | %s |\n", c.Ratio, verdict(c.Ratio >= 1))
		}
		if scraped, ok := s.scrapedRatio(); ok {
			p("| hot serving 1 KiB with /metrics scraped every second: >= 0.97x of without (median of the rounds' ratios, neighbouring slots) | %.3fx | %s |\n", scraped, verdict(scraped >= 0.97))
		}
	}
	if c := r.Cluster; c != nil && c.Skipped == "" {
		p("| edge cold miss < 2 ms added at p50 | %.2f ms | %s |\n", c.ColdOverheadP50, verdict(c.ColdOverheadP50 < 2))
		p("| publish propagation p99 < 50 ms | %.1f ms | %s |\n", c.PropagationP99Ms, verdict(c.PropagationP99Ms < 50))
		if d := c.Deploy; d != nil {
			p("| redeploy of one changed file (%d files, R=3) < 300 ms | %.0f ms | %s |\n", d.Files, d.OneChangeMedM, verdict(d.OneChangeMedM < 300))
			p("| ingest at R=3 >= 50%% of R x bytes / disk bandwidth | %.0f%% | %s |\n", 100*d.IngestOfDisk, verdict(d.IngestOfDisk >= 0.5))
		}
	} else if c != nil {
		p("| cluster targets (cold miss, propagation, R=3 deploy) | skipped | not measured |\n")
	}
	if d := r.Deploy; d != nil {
		p("| redeploy of one changed file (%d files, one node) < 300 ms | %.0f ms | %s |\n", d.Files, d.OneChangeMedM, verdict(d.OneChangeMedM < 300))
		p("| ingest at R=1 >= 50%% of bytes / disk bandwidth | %.0f%% | %s |\n", 100*d.IngestOfDisk, verdict(d.IngestOfDisk >= 0.5))
	}
	for _, d := range []*deployResult{r.Deploy, r.clusterDeploy()} {
		if d != nil {
			p("| uncompressed text answers right after the publish, br or gzip accepted (R=%d) = 0 | %d of %d | %s |\n", d.Replicas, d.IdentityAnswers, d.SampleAnswers, verdict(d.IdentityAnswers == 0))
		}
	}
	if in := r.Ingest; in != nil {
		for _, c := range in.Cases {
			if c.Binary != "atoll" {
				continue
			}
			if c.Replicas == 1 {
				p("| ingest section, one node: >= 30%% of the disk's fdatasync bandwidth (median of the rounds', each against its own probe) | %.0f%% (%.2f s) | %s |\n", 100*c.OfDisk, c.MedianS, verdict(c.OfDisk >= 0.30))
			} else {
				p("| ingest section, 3 core at R=3 through the CLI: <= 2.5 s | %.2f s | %s |\n", c.MedianS, verdict(c.MedianS <= 2.5))
			}
		}
	}
	if rr := r.Rules; rr != nil && len(rr.Cases) > 0 {
		c := rr.Cases[0]
		p("| file no rule matches, site with 10,100 rules: >= 0.90x of the site without | %.3fx | %s |\n", c.Ratio, verdict(c.Ratio >= 0.9))
	}
	if m := r.Metrics; m != nil && len(m.Cases) > 0 {
		c := m.Cases[0]
		p("| hot serving 1 KiB with metrics: >= 0.97x of the binary without | %.3fx | %s |\n", c.Ratio, verdict(c.Ratio >= 0.97))
	}
	if m := r.Meta; m != nil {
		p("| %d-entry deploy: node RSS < 500 MB | %s (peak %s) | %s |\n", m.Entries, benchkit.Human(m.RSSAfterLoad), benchkit.Human(m.RSSPeak), verdict(m.RSSPeak < 500e6))
		p("| %d-entry lookup latency within 1.2x of 1,000 entries (p50, random paths) | %.2fx | %s |\n", m.Entries, m.RandomRatioP50, verdict(m.RandomRatioP50 <= 1.2))
	}
}

func deployTable(b *strings.Builder, d *deployResult) {
	fmt.Fprintf(b, "| figure (R=%d) | value |\n| --- | ---: |\n", d.Replicas)
	fmt.Fprintf(b, "| full deploy, %d files, %s | %.2f s |\n", d.Files, benchkit.Human(d.Bytes), d.FullSeconds)
	fmt.Fprintf(b, "| ingest | %.1f MB/s |\n", d.IngestMBps)
	fmt.Fprintf(b, "| R x ingest / disk bandwidth (%.0f MB/s) | %.0f%% |\n", d.DiskMBps, 100*d.IngestOfDisk)
	fmt.Fprintf(b, "| compressed variants ready on every node, after the deploy | %.2f s |\n", d.VariantsSeconds)
	fmt.Fprintf(b, "| CPU of all nodes, deploy + compression | %.1f s |\n", d.CPUSeconds)
	fmt.Fprintf(b, "| uncompressed answers right after the publish (br, gzip accepted; target 0) | %d of %d |\n", d.IdentityAnswers, d.SampleAnswers)
	fmt.Fprintf(b, "| redeploy, nothing changed | %.0f ms |\n", d.NoChangeMs)
	fmt.Fprintf(b, "| redeploy, one file changed (median of %d) | %.0f ms |\n\n", len(d.OneChangeMs), d.OneChangeMedM)
}

// pairTable writes one row per side of every pair case, with B's ratio to
// A on B's row.
func pairTable(b *strings.Builder, r *pairResult) {
	fmt.Fprintf(b, "| case | req/s | ratio | p50 | p99 |\n| --- | ---: | ---: | ---: | ---: |\n")
	for _, c := range r.Cases {
		fmt.Fprintf(b, "| %s, %s | %.0f | | %s | %s |\n", c.Name, c.A.Label, c.A.RPS, us(c.A.P50), us(c.A.P99))
		fmt.Fprintf(b, "| %s, %s | %.0f | **%.3fx** | %s | %s |\n", c.Name, c.B.Label, c.B.RPS, c.Ratio, us(c.B.P50), us(c.B.P99))
	}
	b.WriteString("\n")
}

// us formats microseconds.
func us(v float64) string {
	if v >= 10000 {
		return fmt.Sprintf("%.1f ms", v/1000)
	}
	if v >= 1000 {
		return fmt.Sprintf("%.2f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// writeMeta writes the metadata-scale section, when it ran.
func (r *results) writeMeta(b *strings.Builder) {
	m := r.Meta
	if m == nil {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("### Metadata scale\n\n")
	p("| figure | value |\n| --- | ---: |\n")
	p("| deploy of %d entries (%s manifest JSON, %d distinct blobs): create + publish | %.1f s (create %.1f s) |\n", m.Entries, benchkit.Human(m.ManifestBytes), m.Blobs, m.DeploySeconds, m.CreateSeconds)
	p("| node RSS before / after deploy / after lookups | %s / %s / %s |\n", benchkit.Human(m.RSSBefore), benchkit.Human(m.RSSAfter), benchkit.Human(m.RSSAfterLoad))
	p("| node peak RSS (VmHWM) | %s |\n", benchkit.Human(m.RSSPeak))
	p("| RSS after lookups: anonymous (heap) / file-backed (bbolt mmap) | %s / %s |\n", benchkit.Human(m.AnonAfterLoad), benchkit.Human(m.FileAfterLoad))
	p("| edge latency p50 / p99, random paths, %d-entry site | %s / %s |\n", m.Entries, us(m.BigRandomP50), us(m.BigRandomP99))
	p("| edge latency p50 / p99, random paths, 1,000-entry site | %s / %s |\n", us(m.SmallRandomP50), us(m.SmallRandomP99))
	p("| ratio big/small, random paths (p50) | %.2fx |\n", m.RandomRatioP50)
	p("| edge latency p50 / p99, one hot path, big / small | %s / %s vs %s / %s (%.2fx) |\n", us(m.BigHotP50), us(m.BigHotP99), us(m.SmallHotP50), us(m.SmallHotP99), m.HotRatioP50)
	p("| CPU per request, random paths, big / small: node | %.1f / %.1f µs (%.2fx) |\n", m.BigNodeCPU, m.SmallNodeCPU, m.BigNodeCPU/m.SmallNodeCPU)
	p("| CPU per request, random paths, big / small: wrk | %.1f / %.1f µs (%.2fx) |\n", m.BigWrkCPU, m.SmallWrkCPU, m.BigWrkCPU/m.SmallWrkCPU)
	if b := m.Baseline; b != nil {
		p("| baseline (%s), same rounds: random p50 big / small | %s / %s (%.2fx) |\n", m.BaselineBin, us(b.BigRandomP50), us(b.SmallRandomP50), b.RandomRatioP50)
		p("| baseline: node CPU per request, random paths, big / small | %.1f / %.1f µs (%.2fx) |\n", b.BigNodeCPU, b.SmallNodeCPU, b.BigNodeCPU/b.SmallNodeCPU)
		p("| baseline: RSS after lookups (anonymous / file-backed) | %s (%s / %s) |\n", benchkit.Human(b.RSSAfterLoad), benchkit.Human(b.AnonAfterLoad), benchkit.Human(b.FileAfterLoad))
	}
	p("\n")
}

// writeRedeploy writes the R=3 redeploy comparison, when it ran.
func (r *results) writeRedeploy(b *strings.Builder) {
	d := r.Redeploy
	if d == nil {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("### One-file redeploy at R=3, this binary against %s (alternating, cluster against cluster)\n\n", orNone(d.Baseline))
	if d.Skipped != "" {
		p("Skipped: %s.\n\n", d.Skipped)
	} else {
		p("| binary | median | max | runs |\n| --- | ---: | ---: | ---: |\n")
		p("| this (%d files) | %.0f ms | %.0f ms | %d |\n", d.Files, d.AtollMed, d.AtollMax, len(d.AtollMs))
		p("| baseline | %.0f ms | %.0f ms | %d |\n\n", d.BaseMed, d.BaseMax, len(d.BaselineMs))
	}
}

// writeIngest writes the ingest section's table, when it ran.
func (r *results) writeIngest(b *strings.Builder) {
	in := r.Ingest
	if in == nil {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("### Ingest: a fresh %d-file, %s site through `atoll deploy` (%d alternating rounds, medians)\n\n", in.Files, benchkit.Human(in.Bytes), in.Rounds)
	p("| binary | topology | median | rounds | MB/s | of disk fdatasync bandwidth (median of the rounds', each against a probe just before it) | target |\n| --- | --- | ---: | --- | ---: | ---: | --- |\n")
	for _, c := range in.Cases {
		topo, target, ofDisk := "3 core, R=3", fmt.Sprintf("<= 2.5 s: %s", verdict(c.MedianS <= 2.5)), "-"
		if c.Replicas == 1 {
			probes := make([]string, len(c.Probes))
			for i, mbps := range c.Probes {
				probes[i] = fmt.Sprintf("%.0f", mbps)
			}
			topo, target = "1 node", fmt.Sprintf(">= 30%%: %s", verdict(c.OfDisk >= 0.30))
			ofDisk = fmt.Sprintf("%.0f%% (probes %s MB/s)", 100*c.OfDisk, strings.Join(probes, ", "))
		}
		rounds := make([]string, len(c.Seconds))
		for i, s := range c.Seconds {
			rounds[i] = fmt.Sprintf("%.2f", s)
		}
		p("| %s | %s | %.2f s | %s | %.1f | %s | %s |\n", c.Binary, topo, c.MedianS, strings.Join(rounds, ", "), c.MBps, ofDisk, target)
	}
	p("\n")
}

// clusterDeploy is the cluster section's deploy figures, nil when it did
// not run.
func (r *results) clusterDeploy() *deployResult {
	if r.Cluster == nil || r.Cluster.Skipped != "" {
		return nil
	}
	return r.Cluster.Deploy
}
