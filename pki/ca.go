package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/internal/durable"
)

// Validity of what a CA makes.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	nodeValidity = 2 * 365 * 24 * time.Hour
)

// DefaultHosts are the names a node certificate covers when none are
// given: loopback, for a test cluster on one machine.
var DefaultHosts = []string{"127.0.0.1", "::1", "localhost"}

// CA signs the certificates of a cluster's mutual TLS (node.Config
// TLSCert, TLSKey, TLSCA): an ECDSA P-256 CA made with the standard library
// only. It is what `atoll certs init` uses; a production cluster may use
// any CA instead, as long as each node's certificate is valid for both
// server and client authentication and covers the host of its raft and API
// addresses.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA makes a self-signed CA named name, valid for ten years.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Atoll"}},
		NotBefore:             now.Add(-time.Hour), // tolerate clock skew between nodes
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCA reads a CA written by WriteFiles (or any PEM ECDSA CA
// certificate and PKCS#8 or SEC 1 key).
func LoadCA(certFile, keyFile string) (*CA, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(cb)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s: not a CA certificate", certFile)
	}
	kblock, _ := pem.Decode(kb)
	if kblock == nil {
		return nil, fmt.Errorf("%s: no PEM key", keyFile)
	}
	var key *ecdsa.PrivateKey
	if k, err := x509.ParsePKCS8PrivateKey(kblock.Bytes); err == nil {
		key, _ = k.(*ecdsa.PrivateKey)
	} else if k, err := x509.ParseECPrivateKey(kblock.Bytes); err == nil {
		key = k
	}
	if key == nil || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s: not the ECDSA key of %s", keyFile, certFile)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CertPEM returns the CA certificate in PEM: the --tls-ca file of every
// node and the --ca file of clients.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// KeyPEM returns the CA key in PEM (PKCS#8).
func (ca *CA) KeyPEM() ([]byte, error) { return keyPEM(ca.Key) }

// Issue makes a certificate for node name, valid for two years for both
// server and client authentication, covering hosts (IP addresses or DNS
// names; DefaultHosts if empty) and name itself as a DNS name. It
// returns the certificate and its new ECDSA P-256 key, both PEM.
func (ca *CA) Issue(name string, hosts []string) (certPEM, keyPEMBytes []byte, err error) {
	if len(hosts) == 0 {
		hosts = DefaultHosts
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	notAfter := now.Add(nodeValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"Atoll"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{name},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != name {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate for %s: %w", name, err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), kp, nil
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// Init writes a CA and node certificates into dir, as `atoll certs
// init` does: ca.pem and ca-key.pem, then NAME.pem and NAME-key.pem for
// each of nodes, covering hosts (DefaultHosts if empty). Keys are
// written with mode 0600. A CA already in dir is reused, so that nodes can
// be added later; an existing node certificate is never overwritten (the
// call fails before writing anything). It returns the files written.
func Init(dir string, nodes, hosts []string) ([]string, error) {
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: no node names", ErrInvalid)
	}
	seen := map[string]bool{"ca": true}
	for _, name := range nodes {
		if !atoll.ValidSiteName(name) || seen[name] {
			return nil, fmt.Errorf("%w: node name %q: want distinct names of 1-63 of [a-z0-9-] (and not \"ca\")", ErrInvalid, name)
		}
		seen[name] = true
		for _, f := range []string{name + ".pem", name + "-key.pem"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				return nil, fmt.Errorf("%s already exists: remove it to issue a new certificate for %s", filepath.Join(dir, f), name)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caCert, caKey := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	var written []string
	ca, err := LoadCA(caCert, caKey)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrNotExist):
		for _, f := range []string{caCert, caKey} {
			if _, serr := os.Stat(f); serr == nil {
				return nil, fmt.Errorf("%s exists without its pair (ca.pem, ca-key.pem): refusing to make a new CA over it", f)
			}
		}
		if ca, err = NewCA("Atoll cluster CA"); err != nil {
			return nil, err
		}
		kp, err := ca.KeyPEM()
		if err != nil {
			return nil, err
		}
		if err := durable.WriteFile(caKey, kp, 0o600); err != nil {
			return nil, err
		}
		if err := durable.WriteFile(caCert, ca.CertPEM(), 0o644); err != nil {
			return nil, err
		}
		written = append(written, caCert, caKey)
	default:
		return nil, err
	}
	for _, name := range nodes {
		cp, kp, err := ca.Issue(name, hosts)
		if err != nil {
			return written, err
		}
		certFile, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		if err := durable.WriteFile(keyFile, kp, 0o600); err != nil {
			return written, err
		}
		if err := durable.WriteFile(certFile, cp, 0o644); err != nil {
			return written, err
		}
		written = append(written, certFile, keyFile)
	}
	return written, nil
}
