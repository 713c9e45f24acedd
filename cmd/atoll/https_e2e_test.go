package main

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atoll-hosting/atoll/atolltest"
)

// TestEndToEndHTTPSOnly runs a node with an HTTPS edge and turns a site's
// --https-only and --hsts on and off with the CLI, reading the site as a
// browser would: plain HTTP is redirected with 308 (query kept) to the
// HTTPS listener, which answers with Strict-Transport-Security; an ACME
// challenge path is not redirected; turned off, both are gone. A node
// without --https-addr refuses --https-only.
func TestEndToEndHTTPSOnly(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts two processes")
	}
	const domain = "shop.example.com"
	dir := t.TempDir()
	siteCA, certPEM, keyPEM := siteCertificate(t, domain)
	certFile, keyFile := filepath.Join(dir, "shop.pem"), filepath.Join(dir, "shop-key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	httpsAddr, err := atolltest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, httpsPort, _ := net.SplitHostPort(httpsAddr)
	node := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true,
		Flags: []string{"--https-addr", httpsAddr, "--https-cert", certFile, "--https-key", keyFile}})
	node.Start()

	site := filepath.Join(dir, "site")
	writeTree(t, site, map[string]string{
		"index.html": "<h1>shop</h1>", "a/b.html": "<p>b</p>",
		".well-known/acme-challenge/tok123": "tok123.thumbprint",
	})
	node.MustCLI("site", "create", "shop", "--domain", domain)
	node.MustCLI("deploy", site, "--site", "shop")

	// A browser: every name of the site dials this node, HTTPS verified
	// against the site's CA; redirects are followed and recorded.
	_, httpPort, _ := net.SplitHostPort(node.HTTPAddr)
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: siteCA},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
		},
	}
	defer tr.CloseIdleConnections()
	var hops []string
	browser := &http.Client{Transport: tr, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		hops = append(hops, req.Response.Status+" "+req.URL.String())
		return nil
	}}
	visit := func(url string) (*http.Response, string, []string) {
		t.Helper()
		hops = nil
		resp, body, err := atolltest.Fetch(t.Context(), browser, "GET", url, "")
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		return resp, string(body), hops
	}
	plainURL := "http://" + net.JoinHostPort(domain, httpPort) + "/a/b?x=1&y=two"
	httpsURL := "https://" + net.JoinHostPort(domain, httpsPort) + "/a/b?x=1&y=two"

	// Off: both schemes serve, no HSTS.
	for _, u := range []string{plainURL, httpsURL} {
		if resp, body, hops := visit(u); resp.StatusCode != 200 || body != "<p>b</p>" || len(hops) != 0 || resp.Header.Get("Strict-Transport-Security") != "" {
			t.Errorf("before --https-only, GET %s: %d %q via %v, HSTS %q; want 200 <p>b</p>, no redirect, no HSTS",
				u, resp.StatusCode, body, hops, resp.Header.Get("Strict-Transport-Security"))
		}
	}

	out := node.MustCLI("site", "update", "shop", "--https-only", "--hsts")
	if !strings.Contains(out, "https-only on, hsts on") {
		t.Errorf("site update said %q, want https-only on, hsts on", out)
	}
	if show := node.MustCLI("site", "show", "shop"); !strings.Contains(show, "https-only:    on") || !strings.Contains(show, "hsts:          on") {
		t.Errorf("site show:\n%s\nwant https-only and hsts on", show)
	}
	if list := node.MustCLI("site", "list"); !strings.Contains(list, "only,hsts") {
		t.Errorf("site list:\n%s\nwant only,hsts in the HTTPS column", list)
	}

	// On: plain HTTP is redirected, query kept, without HSTS; HTTPS has it.
	resp, body, hops := visit(plainURL)
	wantHop := "308 Permanent Redirect " + httpsURL
	if resp.StatusCode != 200 || body != "<p>b</p>" || len(hops) != 1 || hops[0] != wantHop {
		t.Errorf("GET %s: %d %q via %q; want 200 <p>b</p> via %q", plainURL, resp.StatusCode, body, hops, wantHop)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("HTTPS answer: Strict-Transport-Security %q, want max-age=31536000", got)
	}
	redirect, _ := node.Get("GET", "shop.localhost", "/?q=1")
	if got, want := redirect.Header.Get("Location"), "https://"+net.JoinHostPort("shop.localhost", httpsPort)+"/?q=1"; redirect.StatusCode != 308 || got != want {
		t.Errorf("plain GET of the site host: %d Location %q, want 308 %q", redirect.StatusCode, got, want)
	}
	if hsts := redirect.Header.Get("Strict-Transport-Security"); hsts != "" {
		t.Errorf("plain HTTP redirect carries Strict-Transport-Security %q", hsts)
	}
	acme, acmeBody := node.Get("GET", domain, "/.well-known/acme-challenge/tok123")
	if acme.StatusCode != 200 || acmeBody != "tok123.thumbprint" || acme.Header.Get("Strict-Transport-Security") != "" {
		t.Errorf("ACME challenge over plain HTTP: %d %q HSTS %q; want 200, the token, no HSTS",
			acme.StatusCode, acmeBody, acme.Header.Get("Strict-Transport-Security"))
	}

	// Off again: plain HTTP serves, HTTPS has no HSTS.
	node.MustCLI("site", "update", "shop", "--https-only=false", "--hsts=false")
	for _, u := range []string{plainURL, httpsURL} {
		if resp, body, hops := visit(u); resp.StatusCode != 200 || body != "<p>b</p>" || len(hops) != 0 || resp.Header.Get("Strict-Transport-Security") != "" {
			t.Errorf("after --https-only=false, GET %s: %d %q via %v, HSTS %q; want 200, no redirect, no HSTS",
				u, resp.StatusCode, body, hops, resp.Header.Get("Strict-Transport-Security"))
		}
	}

	// A node without an HTTPS listener has nowhere to send visitors.
	plain := atolltest.NewServer(t, atolltest.NodeConfig{Bootstrap: true})
	plain.Start()
	plain.MustCLI("site", "create", "blog")
	if errOut := plain.FailCLI("site", "update", "blog", "--https-only"); !strings.Contains(errOut, "--https-addr") {
		t.Errorf("--https-only without an HTTPS edge: %q, want a message naming --https-addr", errOut)
	}
	plain.MustCLI("site", "update", "blog", "--hsts")
}
