package raft

import (
	"errors"
	"strings"
	"testing"
)

func TestSealCertKey(t *testing.T) {
	const pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n"
	sealed, err := SealCertKey("cluster-key", "shop.example", pem)
	if err != nil {
		t.Fatal(err)
	}
	if !IsSealedKey(sealed) || strings.Contains(sealed, "PRIVATE KEY") {
		t.Fatalf("sealed key %q is not sealed", sealed)
	}
	if got, err := OpenCertKey("cluster-key", "shop.example", sealed); err != nil || got != pem {
		t.Fatalf("OpenCertKey = %q, %v; want the PEM", got, err)
	}
	for _, tc := range []struct{ name, clusterKey, domain, key string }{
		{"other cluster key", "other-key", "shop.example", sealed},
		{"no cluster key", "", "shop.example", sealed},
		{"other domain", "cluster-key", "blog.example", sealed},
		{"truncated", "cluster-key", "shop.example", sealed[:len(sealedKeyPrefix)+4]},
		{"not base64", "cluster-key", "shop.example", sealedKeyPrefix + "!!"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := OpenCertKey(tc.clusterKey, tc.domain, tc.key); !errors.Is(err, ErrSealedKey) {
				t.Errorf("OpenCertKey = %v, want ErrSealedKey", err)
			}
		})
	}
	// A key recorded as PEM (before sealing, or without a cluster key)
	// reads as it is, with or without a cluster key.
	for _, ck := range []string{"", "cluster-key"} {
		if got, err := OpenCertKey(ck, "shop.example", pem); err != nil || got != pem {
			t.Errorf("OpenCertKey(%q, PEM) = %q, %v; want the PEM", ck, got, err)
		}
	}
}
