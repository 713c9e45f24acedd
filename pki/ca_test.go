package pki_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/atoll-hosting/atoll/pki"
)

// Init makes node certificates that verify against its CA for both
// server and client use, for every host given; keys are private to their
// owner; a second run reuses the CA and never overwrites a certificate.
func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	if _, err := pki.Init(dir, []string{"core1", "edge1"}, []string{"10.0.0.1", "node.example.com"}); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, name := range []string{"core1", "edge1"} {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		leaf := pair.Leaf
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("%s does not verify for usage %v: %v", name, usage, err)
			}
		}
		for _, host := range []string{"10.0.0.1", "node.example.com", name} {
			if err := leaf.VerifyHostname(host); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if err := leaf.VerifyHostname("127.0.0.1"); err == nil {
			t.Errorf("%s covers 127.0.0.1, which --hosts did not list", name)
		}
	}
	for _, f := range []string{"ca-key.pem", "core1-key.pem", "edge1-key.pem"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v (%v), want 0600", f, fi.Mode().Perm(), err)
		}
	}

	// A later run adds a node with the same CA and default hosts.
	if _, err := pki.Init(dir, []string{"core2"}, nil); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "core2.pem"), filepath.Join(dir, "core2-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("core2 is not signed by the existing CA: %v", err)
	}
	if err := pair.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("core2 with default hosts: %v", err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "core1.pem"))
	if _, err := pki.Init(dir, []string{"core3", "core1"}, nil); err == nil {
		t.Error("Init overwrote core1's certificate")
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "core1.pem")); string(after) != string(before) {
		t.Error("core1.pem changed")
	}
	if _, err := os.Stat(filepath.Join(dir, "core3.pem")); err == nil {
		t.Error("a refused run still wrote core3.pem")
	}
	if _, err := pki.Init(dir, []string{"Bad_Name"}, nil); err == nil {
		t.Error("Init accepted a node name that is no file-safe id")
	}
}
