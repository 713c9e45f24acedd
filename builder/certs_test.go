package builder_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll"
	"github.com/atoll-hosting/atoll/builder"
	"github.com/atoll-hosting/atoll/builder/buildertest"
	"github.com/atoll-hosting/atoll/raft"
)

// selfSigned returns a certificate for names, valid until notAfter, and
// its key, both PEM.
func selfSigned(t *testing.T, notAfter time.Time, names ...string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    notAfter.Add(-48 * time.Hour),
		NotAfter:     notAfter,
		DNSNames:     names,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}

func TestCertRoutes(t *testing.T) {
	srv := buildertest.NewServer(t, builder.Config{})
	createSite(t, srv, "blog", "blog.example.com", "www.example.com")
	createSite(t, srv, "shop", "shop.example.com")
	deployToken := newToken(t, srv, "blog", "ci").Token

	later := time.Now().Add(90 * 24 * time.Hour)
	cert, key := selfSigned(t, later, "blog.example.com")
	wildcert, wildkey := selfSigned(t, later, "*.example.com")
	_, otherKey := selfSigned(t, later, "blog.example.com")
	oldCert, oldKey := selfSigned(t, time.Now().Add(-time.Hour), "blog.example.com")
	body := func(c, k string) []byte { return jsonBody(t, atoll.PutCertRequest{Cert: c, Key: k}) }
	put := "/v1/sites/blog/certs/blog.example.com"

	cases := []struct {
		name    string
		req     request
		want    int
		message string // in the error
	}{
		{"no token", request{method: "PUT", path: put, token: "-", body: body(cert, key)}, 401, "token"},
		{"deploy token of the site", request{method: "PUT", path: put, token: deployToken, body: body(cert, key)}, 403, "scoped"},
		{"unknown site", request{method: "PUT", path: "/v1/sites/ghost/certs/blog.example.com", body: body(cert, key)}, 404, "ghost"},
		{"domain of another site", request{method: "PUT", path: "/v1/sites/blog/certs/shop.example.com", body: body(cert, key)}, 404, "not a domain"},
		{"cert does not cover the domain", request{method: "PUT", path: "/v1/sites/blog/certs/www.example.com", body: body(cert, key)}, 400, "does not cover"},
		{"key of another cert", request{method: "PUT", path: put, body: body(cert, otherKey)}, 400, "private key does not match"},
		{"expired", request{method: "PUT", path: put, body: body(oldCert, oldKey)}, 400, "expired"},
		{"not PEM", request{method: "PUT", path: put, body: body("hello", "world")}, 400, "certificate"},
		{"missing key", request{method: "PUT", path: put, body: body(cert, "")}, 400, "required"},
		{"unknown field", request{method: "PUT", path: put, body: []byte(`{"cert":"x","key":"y","chain":"z"}`)}, 400, "chain"},
		{"too large", request{method: "PUT", path: put, body: body(cert+strings.Repeat("x", atoll.MaxCertBytes), key)}, 413, "bytes"},
		{"ok", request{method: "PUT", path: put, body: body(cert, key)}, 200, ""},
		{"wildcard, upper case domain", request{method: "PUT", path: "/v1/sites/blog/certs/WWW.example.com", body: body(wildcert, wildkey)}, 200, ""},
		{"delete unknown", request{method: "DELETE", path: "/v1/sites/shop/certs/shop.example.com"}, 404, "no certificate"},
		{"delete by deploy token", request{method: "DELETE", path: "/v1/sites/blog/certs/www.example.com", token: deployToken}, 403, "scoped"},
		{"list by deploy token", request{method: "GET", path: "/v1/sites/blog/certs", token: deployToken}, 403, "scoped"},
		{"list unknown site", request{method: "GET", path: "/v1/sites/ghost/certs"}, 404, "ghost"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := do(t, srv, tc.req)
			if res.status != tc.want {
				t.Fatalf("got %d %s, want %d", res.status, res.body, tc.want)
			}
			if tc.message != "" {
				if e := res.errorBody(t); !strings.Contains(e.Error, tc.message) {
					t.Errorf("error %q, want it to mention %q", e.Error, tc.message)
				}
			}
		})
	}

	stored, err := srv.Meta.Cert("blog.example.com")
	if err != nil || stored.CertPEM != cert || stored.KeyPEM != key || stored.Site != "blog" || stored.NotAfter.Unix() != later.Unix() {
		t.Errorf("stored %+v, %v; want the uploaded pair with its expiry", stored, err)
	}
	if _, err := srv.Meta.Cert("www.example.com"); err != nil {
		t.Errorf("the wildcard certificate is not stored under www.example.com: %v", err)
	}

	res := do(t, srv, request{method: "GET", path: "/v1/sites/blog/certs"})
	if res.status != 200 {
		t.Fatalf("list: %d %s", res.status, res.body)
	}
	if bytes.Contains(res.body, []byte("PRIVATE KEY")) || bytes.Contains(res.body, []byte(`"key"`)) {
		t.Errorf("list shows a key: %s", res.body)
	}
	var list atoll.CertList
	call(t, srv, request{method: "GET", path: "/v1/sites/blog/certs"}, 200, &list)
	if len(list.Certs) != 2 {
		t.Fatalf("list = %+v, want 2 certificates", list)
	}

	call(t, srv, request{method: "DELETE", path: "/v1/sites/blog/certs/www.example.com"}, http.StatusNoContent, nil)
	call(t, srv, request{method: "DELETE", path: "/v1/sites/blog/certs/www.example.com"}, http.StatusNotFound, nil)
}

// Without a Meta that stores certificates, the routes say so.
func TestCertRoutesNeedCertMeta(t *testing.T) {
	meta := buildertest.NewMeta(t)
	// Only builder.Meta's methods: the store's Certs is hidden.
	api, err := builder.New(builder.Config{TempDir: t.TempDir()}, struct{ builder.Meta }{meta}, buildertest.NewBlobs(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	srv := &buildertest.Server{Server: buildertest.Serve(t, api), API: api, Meta: meta}
	createSite(t, srv, "blog", "blog.example.com")
	res := do(t, srv, request{method: "GET", path: "/v1/sites/blog/certs"})
	if res.status != http.StatusNotImplemented {
		t.Errorf("got %d %s, want 501", res.status, res.body)
	}
}

// With Config.SealCertKey the state records the sealed key, never the PEM,
// and the answer is the same.
func TestCertKeySealed(t *testing.T) {
	const clusterKey = "cluster-key"
	srv := buildertest.NewServer(t, builder.Config{SealCertKey: func(domain, keyPEM string) (string, error) {
		return raft.SealCertKey(clusterKey, domain, keyPEM)
	}})
	createSite(t, srv, "blog", "blog.example.com")
	cert, key := selfSigned(t, time.Now().Add(time.Hour), "blog.example.com")
	call(t, srv, request{method: "PUT", path: "/v1/sites/blog/certs/blog.example.com",
		body: jsonBody(t, atoll.PutCertRequest{Cert: cert, Key: key})}, 200, nil)
	stored, err := srv.Meta.Cert("blog.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !raft.IsSealedKey(stored.KeyPEM) || strings.Contains(stored.KeyPEM, "PRIVATE KEY") {
		t.Fatalf("stored key %.60q, want it sealed", stored.KeyPEM)
	}
	if got, err := raft.OpenCertKey(clusterKey, "blog.example.com", stored.KeyPEM); err != nil || got != key {
		t.Errorf("the stored key opens to %.40q, %v; want the uploaded PEM", got, err)
	}
}
