package trackdomain_test

import (
	"context"
	"testing"

	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/trackdomain"
	"github.com/postalgo/postal/daemon/resolver/dnstest"
	"github.com/postalgo/postal/daemon/store"
)

func TestTrackDomainCommands(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		ctx := context.Background()
		if _, err := e.Store.CreateOrganization(ctx, "Acme", "acme"); err != nil {
			t.Fatal(err)
		}
		srv, err := e.Store.CreateServer(ctx, "acme", store.NewServer{Name: "Mail", Permalink: "mail"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Store.CreateDomain(ctx, srv.ID, store.NewDomain{Name: "example.com", VerificationToken: "t", DKIMIdentifierString: "ABCDEF"}); err != nil {
			t.Fatal(err)
		}
		got := e.Steps(t, trackdomain.NewCmd, []clitest.Step{
			{Args: []string{"track-domain", "add", "acme/mail", "Click.example.com", "--exclude-click-domains", "example.org"}, JSON: true},
			{Args: []string{"track-domain", "add", "acme/mail", "t.example.com", "--no-ssl", "--no-track-loads"}, Out: "Publish: t.example.com CNAME track.postal.test"},
			{Args: []string{"track-domain", "add", "acme/mail", "click.example.com"}, Code: 1, ErrText: "track domain click.example.com already exists on acme/mail"},
			{Args: []string{"track-domain", "add", "acme/mail", "click.other.com"}, Code: 1, ErrText: "domain other.com is not on acme/mail"},
			{Args: []string{"track-domain", "add", "acme/mail", "localhost"}, Code: 2, ErrText: "is not NAME.DOMAIN"},
			{Args: []string{"track-domain", "add", "acme/mail", "v.example.com", "--verified"}, JSON: true},
			{Args: []string{"track-domain", "set", "acme/mail", "v.example.com", "--verified=false"}, Out: "Track domain v.example.com: verified false."},
			{Args: []string{"track-domain", "set", "acme/mail", "t.example.com", "--verified"}, Out: "Track domain t.example.com: verified true."},
			{Args: []string{"track-domain", "set", "acme/mail", "t.example.com"}, Code: 2, ErrText: "nothing to set"},
			{Args: []string{"track-domain", "set", "acme/mail", "x.example.com", "--verified"}, Code: 1, ErrText: "track domain x.example.com not found on acme/mail"},
			{Args: []string{"track-domain", "ls", "acme/mail"}, JSON: true},
			{Args: []string{"track-domain", "rm", "acme/mail", "t.example.com"}, JSON: true},
			{Args: []string{"track-domain", "rm", "acme/mail", "t.example.com"}, Code: 1, ErrText: "track domain t.example.com not found on acme/mail"},
		})
		clitest.Golden(t, "trackdomain", got)
	})
}

// track-domain check stores the CNAME check; tracking is on when it is OK
// or the track domain is marked verified.
func TestTrackDomainCheck(t *testing.T) {
	clitest.Each(t, func(t *testing.T, e *clitest.Env) {
		ctx := context.Background()
		if _, err := e.Store.CreateOrganization(ctx, "Acme", "acme"); err != nil {
			t.Fatal(err)
		}
		srv, err := e.Store.CreateServer(ctx, "acme", store.NewServer{Name: "Mail", Permalink: "mail"})
		if err != nil {
			t.Fatal(err)
		}
		dom, err := e.Store.CreateDomain(ctx, srv.ID, store.NewDomain{Name: "example.com", VerificationToken: "t", DKIMIdentifierString: "ABCDEF"})
		if err != nil {
			t.Fatal(err)
		}
		dns := dnstest.NewServer(t, dnstest.CNAME("click.example.com", "track.postal.test"), dnstest.CNAME("bad.example.com", "elsewhere.test"))
		e.Env["DNS_NAMESERVERS"] = dns.Addr()
		e.Env["POSTAL_USE_LOCAL_NS_FOR_DOMAIN_VERIFICATION"] = "true"
		e.Steps(t, trackdomain.NewCmd, []clitest.Step{
			{Args: []string{"track-domain", "add", "acme/mail", "click.example.com"}, Out: "Added track domain"},
			{Args: []string{"track-domain", "add", "acme/mail", "bad.example.com"}, Out: "Added track domain"},
			{Args: []string{"track-domain", "check", "acme/mail", "click.example.com"}, Out: "Messages from its domain are tracked."},
			{Args: []string{"track-domain", "check", "acme/mail", "bad.example.com"}, Out: "Not tracking: publish bad.example.com CNAME track.postal.test"},
			{Args: []string{"track-domain", "check", "acme/mail", "none.example.com"}, Code: 1, ErrText: "track domain none.example.com not found"},
		})
		if td, err := e.Store.ActiveTrackDomain(ctx, srv.ID, dom.ID); err != nil || td.FullName() != "click.example.com" || td.DNS.Status != "OK" {
			t.Fatalf("active track domain = %+v, %v", td, err)
		}
	})
}
