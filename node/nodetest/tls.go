package nodetest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll/node"
	"github.com/atoll-hosting/atoll/pki"
)

// TLS is a test cluster's certificate authority, made with the generator
// behind `atoll certs init`, and the directory of its files.
type TLS struct {
	t   testing.TB
	CA  *pki.CA
	Dir string // ca.pem, and NAME.pem / NAME-key.pem of every issued name
}

// NewTLS makes a CA in a temporary directory.
func NewTLS(t testing.TB) *TLS {
	t.Helper()
	ca, err := pki.NewCA("nodetest CA")
	if err != nil {
		t.Fatal(err)
	}
	x := &TLS{t: t, CA: ca, Dir: t.TempDir()}
	if err := os.WriteFile(x.CAFile(), ca.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return x
}

// CAFile is the CA certificate's file (--tls-ca, and clients' --ca).
func (x *TLS) CAFile() string { return filepath.Join(x.Dir, "ca.pem") }

// Issue writes a certificate for name covering 127.0.0.1 and localhost,
// signed by the CA, and returns its certificate and key files.
func (x *TLS) Issue(name string) (certFile, keyFile string) {
	x.t.Helper()
	certFile, keyFile = filepath.Join(x.Dir, name+".pem"), filepath.Join(x.Dir, name+"-key.pem")
	if _, err := os.Stat(certFile); err == nil {
		return certFile, keyFile
	}
	cert, key, err := x.CA.Issue(name, []string{"127.0.0.1", "localhost"})
	if err != nil {
		x.t.Fatal(err)
	}
	if err := os.WriteFile(certFile, cert, 0o644); err != nil {
		x.t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		x.t.Fatal(err)
	}
	return certFile, keyFile
}

// Apply gives cfg the node certificate of cfg.ID and this CA, and turns
// an http:// join URL into https://.
func (x *TLS) Apply(cfg *node.Config) {
	cfg.TLSCert, cfg.TLSKey = x.Issue(cfg.ID)
	cfg.TLSCA = x.CAFile()
	if rest, ok := strings.CutPrefix(cfg.Join, "http://"); ok {
		cfg.Join = "https://" + rest
	}
}

// WithTLS puts a cluster on mutual TLS: each member gets its own
// certificate of x's CA (see TLS.Apply).
func WithTLS(x *TLS) Option { return x.Apply }
