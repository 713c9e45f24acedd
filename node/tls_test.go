package node_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/node"
	"github.com/atoll-hosting/atoll/node/nodetest"
	"github.com/atoll-hosting/atoll/peer"
	"github.com/atoll-hosting/atoll/pki"
)

// httpsGet fetches path from an HTTPS edge with SNI and Host set to host,
// trusting roots only.
func httpsGet(edgeURL, host, path string, roots *x509.CertPool) (int, string, error) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: host}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest("GET", edgeURL+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func pool(ca *pki.CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// A cluster on mutual TLS (2 core, 1 edge) takes a deploy through a
// follower, the edge fetches its blobs from the owners over TLS, and the
// edge serves a custom domain over HTTPS with the certificate uploaded
// through the API, until it is deleted.
func TestTLSClusterDeploysAndServesHTTPS(t *testing.T) {
	x := nodetest.NewTLS(t)
	c := nodetest.New(t, 2, 1, nodetest.WithTLS(x), func(cfg *node.Config) { cfg.HTTPSAddr = "127.0.0.1:0" })
	leader := c.Leader()
	var follower *nodetest.Member
	for _, m := range c.Members {
		if m != leader && m.Cfg.Role == "core" {
			follower = m
		}
	}
	edge := c.Member("edge1")
	if u := follower.Node.APIURL(); !strings.HasPrefix(u, "https://") {
		t.Fatalf("API URL %s, want https", u)
	}

	ctx := context.Background()
	cl := c.Client(follower)
	if _, err := cl.CreateSite(ctx, "shop", []string{"shop.example.com"}, 0); err != nil {
		t.Fatalf("create site through follower: %v", err)
	}
	deploy(t, cl, "shop", site(t, 10, "v1"))
	// Admin calls that must run on the leader are proxied to it over TLS.
	if _, err := cl.Repair(ctx); err != nil {
		t.Fatalf("repair through follower (proxied to the leader): %v", err)
	}
	c.Eventually(10*time.Second, "the edge to apply the publish", func() bool {
		status, _, _ := get(edge.Node.EdgeURL(), "shop", "/")
		return status == 200
	})
	for i := range 10 {
		want := fmt.Sprintf("<p>page %d v1</p>%s", i, strings.Repeat(" ", i))
		status, body, err := get(edge.Node.EdgeURL(), "shop", fmt.Sprintf("/p/%d.html", i))
		if err != nil || status != 200 || body != want {
			t.Fatalf("edge /p/%d.html: %d %q %v, want 200 %q", i, status, body, err, want)
		}
		// A cold miss is answered from the fetched bytes while the edge
		// writes its own copy (fetch.go); the copy follows.
		c.Eventually(10*time.Second, fmt.Sprintf("the edge to hold page %d after serving it", i), func() bool {
			return edge.Node.LocalBlobs().Has(sha(want))
		})
	}

	// A certificate for the custom domain, from some public CA.
	siteCA, err := pki.NewCA("public CA")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := siteCA.Issue("shop.example.com", []string{"shop.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutCert(ctx, "shop", "shop.example.com", string(certPEM), string(keyPEM)); err != nil {
		t.Fatalf("put cert: %v", err)
	}
	roots := pool(siteCA)
	c.Eventually(10*time.Second, "the edge serving shop.example.com over HTTPS", func() bool {
		status, body, err := httpsGet(edge.Node.EdgeHTTPSURL(), "shop.example.com", "/", roots)
		return err == nil && status == 200 && body == "<h1>v1</h1>"
	})
	if _, _, err := httpsGet(edge.Node.EdgeHTTPSURL(), "other.example.com", "/", roots); err == nil {
		t.Error("HTTPS for a name without a certificate succeeded, want a failed handshake (no default certificate)")
	}
	list, err := cl.Certs(ctx, "shop")
	if err != nil || len(list) != 1 || list[0].Domain != "shop.example.com" || list[0].NotAfter.IsZero() {
		t.Errorf("Certs = %+v, %v; want shop.example.com with its expiry", list, err)
	}

	// Deleting it reaches the edge's cache.
	if err := cl.DeleteCert(ctx, "shop", "shop.example.com"); err != nil {
		t.Fatal(err)
	}
	c.Eventually(10*time.Second, "the edge to stop serving the deleted certificate", func() bool {
		_, _, err := httpsGet(edge.Node.EdgeHTTPSURL(), "shop.example.com", "/", roots)
		return err != nil
	})
}

// Peer endpoints of a TLS cluster need a client certificate of the cluster
// CA on top of the cluster key; builder calls do not.
func TestTLSPeerCallsNeedAClientCertificate(t *testing.T) {
	x := nodetest.NewTLS(t)
	c := nodetest.New(t, 1, 0, nodetest.WithTLS(x))
	api := c.Members[0].Node.APIURL()
	roots := pool(x.CA)
	nodeCert, err := tls.LoadX509KeyPair(x.Issue("peer"))
	if err != nil {
		t.Fatal(err)
	}
	other := nodetest.NewTLS(t)
	foreignCert, err := tls.LoadX509KeyPair(other.Issue("foreign"))
	if err != nil {
		t.Fatal(err)
	}
	clientWith := func(certs ...tls.Certificate) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 5 * time.Second}
	}
	none, valid, foreign := clientWith(), clientWith(nodeCert), clientWith(foreignCert)
	blob := "/v1/peer/blobs/" + sha("absent")
	tests := []struct {
		name          string
		client        *http.Client
		method, path  string
		key, token    string
		want          int // 0: the TLS handshake must fail
		wantInMessage string
	}{
		{"key without cert: blob fetch", none, "GET", blob, nodetest.Key, "", 403, "client certificate"},
		{"key without cert: apply", none, "POST", "/v1/peer/apply", nodetest.Key, "", 403, "client certificate"},
		{"key without cert: stats", none, "GET", "/v1/peer/stats", nodetest.Key, "", 403, "client certificate"},
		{"key without cert: has", none, "POST", peer.HasPath, nodetest.Key, "", 403, "client certificate"},
		{"key without cert: join", none, "POST", "/v1/nodes", nodetest.Key, "", 403, "client certificate"},
		{"foreign cert: blob fetch", foreign, "GET", blob, nodetest.Key, "", 0, ""},
		{"foreign cert: join", foreign, "POST", "/v1/nodes", nodetest.Key, "", 0, ""},
		{"cert without key", valid, "GET", blob, "", "", 403, "cluster key"},
		{"cert and key", valid, "GET", blob, nodetest.Key, "", 404, ""},
		{"builder token without cert", none, "GET", "/v1/sites", "", nodetest.Token, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, api+tc.path, strings.NewReader("{}"))
			if tc.key != "" {
				req.Header.Set(peer.HeaderClusterKey, tc.key)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := tc.client.Do(req)
			if tc.want == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("got %d, want a failed TLS handshake", resp.StatusCode)
				}
				var op *net.OpError // how crypto/tls reports the server's alert
				if !errors.As(err, &op) || op.Op != "remote error" {
					t.Errorf("error %v, want a TLS alert from the server", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want || !strings.Contains(string(b), tc.wantInMessage) {
				t.Errorf("got %d %s, want %d mentioning %q", resp.StatusCode, b, tc.want, tc.wantInMessage)
			}
		})
	}
}

// A node whose certificate another CA signed cannot join, even with the
// right cluster key: the join call fails its TLS handshake, fast.
func TestTLSForeignNodeCannotJoin(t *testing.T) {
	x := nodetest.NewTLS(t)
	c := nodetest.New(t, 1, 0, nodetest.WithTLS(x))
	cfg := node.DefaultConfig()
	cfg.ID, cfg.DataDir = "intruder", t.TempDir()
	cfg.RaftAddr, cfg.APIAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Join, cfg.ClusterKey = c.Members[0].Node.APIURL(), nodetest.Key
	nodetest.NewTLS(t).Apply(&cfg) // a CA of its own
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	n, err := node.Start(ctx, cfg)
	if err == nil {
		n.Close()
		t.Fatal("a node with a certificate of another CA joined")
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("join error %q, want it to name the certificate", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("join gave up after %s: a certificate error is not worth retrying", d)
	}
	if ids := mustServers(t, c); len(ids) != 1 {
		t.Errorf("raft configuration %v, want the one original node", ids)
	}
	if nodes, err := c.Members[0].Node.Store().Nodes(); err != nil || len(nodes) != 1 {
		t.Errorf("node table %+v (%v), want the one original node", nodes, err)
	}
}

func mustServers(t *testing.T, c *nodetest.Cluster) []string {
	t.Helper()
	servers, err := c.Members[0].Node.Store().Servers()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range servers {
		ids = append(ids, s.ID)
	}
	return ids
}
