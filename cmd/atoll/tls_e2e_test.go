package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// TestEndToEndTLS runs a cluster the way the README's TLS section says:
// `atoll certs init`, two core nodes on mutual TLS (the second joins over
// https), a deploy through the CLI trusting the cluster CA with --ca, and
// HTTPS on the edge for a custom domain whose certificate is uploaded with
// `atoll cert put` through the other node.
func TestEndToEndTLS(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts two processes")
	}
	certs := filepath.Join(t.TempDir(), "certs")
	initCmd := exec.Command(atolltest.Bin(), "certs", "init", "--dir", certs, "--nodes", "core1,core2")
	if out, err := initCmd.CombinedOutput(); err != nil {
		t.Fatalf("atoll certs init: %v\n%s", err, out)
	}
	for _, f := range []string{"ca.pem", "ca-key.pem", "core1.pem", "core1-key.pem", "core2.pem", "core2-key.pem"} {
		fi, err := os.Stat(filepath.Join(certs, f))
		if err != nil {
			t.Fatalf("certs init did not write %s: %v", f, err)
		}
		if strings.HasSuffix(f, "-key.pem") && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}

	const key, token = "e2e-cluster-key", "e2e-admin-token"
	ca := filepath.Join(certs, "ca.pem")
	mk := func(id string, flags ...string) *atolltest.Server {
		return atolltest.NewServer(t, atolltest.NodeConfig{ID: id, AdminToken: token, CA: ca, Flags: append([]string{"--cluster-key", key,
			"--tls-cert", filepath.Join(certs, id+".pem"), "--tls-key", filepath.Join(certs, id+"-key.pem"), "--tls-ca", ca}, flags...)})
	}
	core1 := mk("core1")
	core1.Bootstrap = true
	core1.Start()
	httpsAddr, err := atolltest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	core2 := mk("core2", "--join", "https://"+core1.APIAddr, "--https-addr", httpsAddr)
	core2.Start()
	if list := core1.MustCLI("node", "list"); !strings.Contains(list, "core2") {
		t.Fatalf("node list lacks core2:\n%s", list)
	}

	// Without the cluster CA the CLI refuses the server's certificate.
	if errOut := core1.FailCLI("site", "list", "--ca="); !strings.Contains(errOut, "certificate") {
		t.Errorf("CLI without --ca: %q, want a certificate error", errOut)
	}

	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"index.html": "<h1>secure</h1>", "a/b.html": "<p>b</p>"})
	core2.MustCLI("site", "create", "shop", "--domain", "shop.example.com")
	core2.MustCLI("deploy", dir, "--site", "shop")

	// A certificate for the custom domain from some other CA, uploaded
	// through core1 and served by core2's HTTPS edge.
	siteCA, siteCert, siteKey := siteCertificate(t, "shop.example.com")
	certFile, keyFile := filepath.Join(dir, "..", "shop.pem"), filepath.Join(dir, "..", "shop-key.pem")
	if err := os.WriteFile(certFile, siteCert, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, siteKey, 0o600); err != nil {
		t.Fatal(err)
	}
	core1.MustCLI("cert", "put", "--site", "shop", "--domain", "shop.example.com", "--cert", certFile, "--key", keyFile)
	if list := core1.MustCLI("cert", "list", "--site", "shop"); !strings.Contains(list, "shop.example.com") || strings.Contains(list, "PRIVATE") {
		t.Errorf("cert list:\n%s\nwant shop.example.com and no key", list)
	}

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: siteCA, ServerName: "shop.example.com"}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, b, err := atolltest.Fetch(context.Background(), hc, "GET", "https://"+httpsAddr+"/a/b", "shop.example.com")
		if err == nil {
			if body = string(b); resp.StatusCode == 200 && body == "<p>b</p>" {
				break
			}
		} else {
			body = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("https://shop.example.com/a/b on core2: last %q, want <p>b</p>", body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Node-to-node endpoints want a client certificate besides the key.
	req, _ := http.NewRequest("GET", core1.APIURL()+"/v1/peer/stats", nil)
	req.Header.Set("X-Atoll-Cluster-Key", key)
	resp, err := core1.APIClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("peer call with the key but no client certificate: %d, want 403", resp.StatusCode)
	}
}

// siteCertificate makes a CA and a certificate for domain signed by it:
// the CA as a pool, the certificate and key as PEM.
func siteCertificate(t *testing.T, domain string) (*x509.CertPool, []byte, []byte) {
	t.Helper()
	mk := func(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		return cert, key
	}
	now := time.Now()
	caCert, caKey := mk(&x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "site CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	leaf, leafKey := mk(&x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: domain},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), DNSNames: []string{domain},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, caCert, caKey)
	kder, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return pool,
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
