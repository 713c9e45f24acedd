package raft

import (
	"errors"
	"strings"
	"testing"

	"github.com/atoll-hosting/atoll"
)

func putCert(site, domain, tag string) PutCert {
	return PutCert{Site: site, Domain: domain, CertPEM: "cert " + tag, KeyPEM: "key " + tag, NotAfter: t0, Updated: t0}
}

func TestCertCommands(t *testing.T) {
	h := newFSM(t)
	h.must(
		CreateSite{Name: "blog", Domains: []string{"blog.example.com", "www.example.com"}, Created: t0},
		CreateSite{Name: "shop", Domains: []string{"shop.example.com"}, Created: t0},
	)
	cases := []struct {
		name string
		cmd  Command
		want error
	}{
		{name: "put", cmd: putCert("blog", "blog.example.com", "1")},
		{name: "put again (retry)", cmd: putCert("blog", "blog.example.com", "1")},
		{name: "replace", cmd: putCert("blog", "blog.example.com", "2")},
		{name: "second domain", cmd: putCert("blog", "www.example.com", "1")},
		{name: "other site's domain", cmd: putCert("blog", "shop.example.com", "1"), want: atoll.ErrNotFound},
		{name: "unknown domain", cmd: putCert("blog", "nope.example.com", "1"), want: atoll.ErrNotFound},
		{name: "unknown site", cmd: putCert("ghost", "blog.example.com", "1"), want: atoll.ErrNotFound},
		{name: "bad domain", cmd: putCert("blog", "Blog.Example.com", "1"), want: atoll.ErrInvalid},
		{name: "empty key", cmd: PutCert{Site: "blog", Domain: "blog.example.com", CertPEM: "x"}, want: atoll.ErrInvalid},
		{name: "too big", cmd: PutCert{Site: "blog", Domain: "blog.example.com", CertPEM: strings.Repeat("x", atoll.MaxCertBytes), KeyPEM: "k"}, want: atoll.ErrInvalid},
		{name: "delete other site's", cmd: DeleteCert{Site: "shop", Domain: "www.example.com"}, want: atoll.ErrNotFound},
		{name: "delete", cmd: DeleteCert{Site: "blog", Domain: "www.example.com"}},
		{name: "delete again", cmd: DeleteCert{Site: "blog", Domain: "www.example.com"}, want: atoll.ErrNotFound},
	}
	for _, tc := range cases {
		if err := h.apply(tc.cmd); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	c, err := h.f.Cert("blog.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if c.CertPEM != "cert 2" || c.KeyPEM != "key 2" || c.Site != "blog" || !c.NotAfter.Equal(t0) {
		t.Errorf("Cert = %+v, want the replaced certificate of blog", c)
	}
	if _, err := h.f.Cert("www.example.com"); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("deleted certificate: got %v, want ErrNotFound", err)
	}
	list, err := h.f.Certs("blog")
	if err != nil || len(list) != 1 || list[0].Domain != "blog.example.com" {
		t.Errorf("Certs(blog) = %+v, %v; want blog.example.com only", list, err)
	}
	if _, err := h.f.Certs("ghost"); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("Certs(ghost): got %v, want ErrNotFound", err)
	}
}

// A certificate never outlives its domain's tie to the site: removing the
// domain or deleting the site drops it, so a later owner of the domain does
// not inherit it.
func TestCertsFollowTheirDomain(t *testing.T) {
	h := newFSM(t)
	h.must(
		CreateSite{Name: "blog", Domains: []string{"a.example.com", "b.example.com"}, Created: t0},
		putCert("blog", "a.example.com", "a"),
		putCert("blog", "b.example.com", "b"),
		UpdateSite{Name: "blog", Domains: []string{"b.example.com"}},
	)
	if _, err := h.f.Cert("a.example.com"); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("after removing the domain: got %v, want ErrNotFound", err)
	}
	if _, err := h.f.Cert("b.example.com"); err != nil {
		t.Errorf("kept domain lost its certificate: %v", err)
	}
	h.must(
		DeleteSite{Name: "blog"},
		CreateSite{Name: "new", Domains: []string{"b.example.com"}, Created: t0},
	)
	if _, err := h.f.Cert("b.example.com"); !errors.Is(err, atoll.ErrNotFound) {
		t.Errorf("after deleting the site: got %v, want ErrNotFound", err)
	}
	if list, err := h.f.Certs("new"); err != nil || len(list) != 0 {
		t.Errorf("Certs(new) = %+v, %v; want none", list, err)
	}
}
