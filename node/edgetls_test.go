package node

import (
	"crypto/tls"
	"sync"
	"testing"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/pki"
)

// certCache serves the certificate recorded for a name, the default one
// for any other name (or none), sees changes only after a reset, and
// parses an unchanged record only once.
func TestCertCache(t *testing.T) {
	ca, err := pki.NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string) atoll.Cert {
		c, k, err := ca.Issue(name, []string{name})
		if err != nil {
			t.Fatal(err)
		}
		return atoll.Cert{Domain: name, CertPEM: string(c), KeyPEM: string(k)}
	}
	var mu sync.Mutex
	records := map[string]atoll.Cert{"a.example.com": issue("a.example.com")}
	loads := 0
	load := func(d string) (atoll.Cert, error) {
		mu.Lock()
		defer mu.Unlock()
		loads++
		if c, ok := records[d]; ok {
			return c, nil
		}
		return atoll.Cert{}, atoll.ErrNotFound
	}
	def := issue("default.example.com")
	defPair, err := tls.X509KeyPair([]byte(def.CertPEM), []byte(def.KeyPEM))
	if err != nil {
		t.Fatal(err)
	}

	served := func(c *certCache, sni string) string {
		t.Helper()
		cert, err := c.get(&tls.ClientHelloInfo{ServerName: sni})
		if err != nil {
			return "error"
		}
		return cert.Leaf.DNSNames[0]
	}
	noDefault := newCertCache(load, nil)
	withDefault := newCertCache(load, &defPair)
	cases := []struct {
		name  string
		cache *certCache
		sni   string
		want  string
	}{
		{"recorded", noDefault, "a.example.com", "a.example.com"},
		{"case and root dot", noDefault, "A.Example.COM.", "a.example.com"},
		{"unknown, no default", noDefault, "b.example.com", "error"},
		{"no SNI, no default", noDefault, "", "error"},
		{"unknown, default", withDefault, "b.example.com", "default.example.com"},
		{"no SNI, default", withDefault, "", "default.example.com"},
		{"recorded beats default", withDefault, "a.example.com", "a.example.com"},
	}
	for _, tc := range cases {
		if got := served(tc.cache, tc.sni); got != tc.want {
			t.Errorf("%s: served %s, want %s", tc.name, got, tc.want)
		}
	}

	// Cached: no load until a reset, even when the record changes.
	mu.Lock()
	before := loads
	records["b.example.com"] = issue("b.example.com")
	mu.Unlock()
	if got := served(noDefault, "b.example.com"); got != "error" {
		t.Errorf("before reset: served %s, want the cached answer (error)", got)
	}
	if served(noDefault, "a.example.com"); loads != before {
		t.Errorf("%d loads without a reset, want 0", loads-before)
	}
	first, _ := noDefault.get(&tls.ClientHelloInfo{ServerName: "a.example.com"})
	noDefault.reset()
	if got := served(noDefault, "b.example.com"); got != "b.example.com" {
		t.Errorf("after reset: served %s, want b.example.com", got)
	}
	again, _ := noDefault.get(&tls.ClientHelloInfo{ServerName: "a.example.com"})
	if again != first {
		t.Error("an unchanged record was parsed again after a reset")
	}
	mu.Lock()
	delete(records, "a.example.com")
	mu.Unlock()
	noDefault.reset()
	if got := served(noDefault, "a.example.com"); got != "error" {
		t.Errorf("after delete and reset: served %s, want error", got)
	}
}
