package main

import (
	"strings"
	"testing"
)

// TestTargetsTableHasIngestAndVariants: the Targets table gives a verdict
// for issue 16's ingest targets (from the ingest section, the measured
// binary only) and for the uncompressed answers after a publish.
func TestTargetsTableHasIngestAndVariants(t *testing.T) {
	r := &results{
		Deploy:  &deployResult{Replicas: 1, SampleAnswers: 200},
		Cluster: &clusterResult{Deploy: &deployResult{Replicas: 3, SampleAnswers: 800, IdentityAnswers: 3}},
		Ingest: &ingestResult{Cases: []ingestCase{
			{Binary: "atoll", Replicas: 3, MedianS: 1.1},
			{Binary: "atoll", Replicas: 1, MedianS: 0.3, OfDisk: 0.25},
			{Binary: "baseline", Replicas: 1, MedianS: 0.3, OfDisk: 0.9},
		}},
	}
	var b strings.Builder
	r.writeTargets(&b)
	got := b.String()
	for _, want := range []string{
		"| uncompressed text answers right after the publish, br or gzip accepted (R=1) = 0 | 0 of 200 | met |",
		"| uncompressed text answers right after the publish, br or gzip accepted (R=3) = 0 | 3 of 800 | **missed** |",
		"| ingest section, 3 core at R=3 through the CLI: <= 2.5 s | 1.10 s | met |",
		"(median of the rounds', each against its own probe) | 25% (0.30 s) | **missed** |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("targets table lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "90%") {
		t.Errorf("targets table gives the baseline binary's ingest a verdict:\n%s", got)
	}
}
