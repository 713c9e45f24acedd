package pki_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll/pki"
)

// LoadCluster accepts a node certificate of the cluster CA and refuses, at
// start, files that would only fail later as handshake errors.
func TestLoadCluster(t *testing.T) {
	dir := t.TempDir()
	if _, err := pki.Init(dir, []string{"core1"}, []string{"127.0.0.1", "node.example.com"}); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if _, err := pki.Init(other, []string{"core1"}, nil); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := func(d, f string) string { return filepath.Join(d, f) }
	tests := []struct {
		name              string
		cert, key, ca     string
		wantErrMentioning string // "" for success
	}{
		{"certificate of the CA", in(dir, "core1.pem"), in(dir, "core1-key.pem"), in(dir, "ca.pem"), ""},
		{"certificate of another CA", in(other, "core1.pem"), in(other, "core1-key.pem"), in(dir, "ca.pem"), "does not verify against --tls-ca"},
		{"key of another certificate", in(dir, "core1.pem"), in(other, "core1-key.pem"), in(dir, "ca.pem"), "--tls-cert/--tls-key"},
		{"CA file without a certificate", in(dir, "core1.pem"), in(dir, "core1-key.pem"), notPEM, "no PEM certificate"},
		{"CA file missing", in(dir, "core1.pem"), in(dir, "core1-key.pem"), in(dir, "absent.pem"), "--tls-ca"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := pki.LoadCluster(tc.cert, tc.key, tc.ca)
			if tc.wantErrMentioning != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrMentioning) {
					t.Fatalf("got %v, want an error mentioning %q", err, tc.wantErrMentioning)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for host, want := range map[string]bool{"127.0.0.1": true, "node.example.com": true, "core1": true, "10.9.9.9": false} {
				if got := c.Covers(host); got != want {
					t.Errorf("Covers(%s) = %v, want %v", host, got, want)
				}
			}
			if got := c.ServerConfig().ClientAuth; got != tls.VerifyClientCertIfGiven {
				t.Errorf("API listener client auth %v, want a certificate verified when given", got)
			}
		})
	}
}

// Without cluster TLS there is no Raft TLS config.
func TestNilClusterHasNoRaftConfig(t *testing.T) {
	var c *pki.Cluster
	if got := c.RaftConfig(); got != nil {
		t.Errorf("RaftConfig of no cluster TLS = %+v, want nil", got)
	}
}
