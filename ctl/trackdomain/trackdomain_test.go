package trackdomain_test

import (
	"context"
	"testing"

	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/trackdomain"
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
		got := run(t, e, trackdomain.NewCmd, []step{
			{args: []string{"track-domain", "add", "acme/mail", "Click.example.com", "--exclude-click-domains", "example.org"}, json: true},
			{args: []string{"track-domain", "add", "acme/mail", "t.example.com", "--no-ssl", "--no-track-loads"}, out: "Publish: t.example.com CNAME track.postal.test"},
			{args: []string{"track-domain", "add", "acme/mail", "click.example.com"}, code: 1, errText: "track domain click.example.com already exists on acme/mail"},
			{args: []string{"track-domain", "add", "acme/mail", "click.other.com"}, code: 1, errText: "domain other.com is not on acme/mail"},
			{args: []string{"track-domain", "add", "acme/mail", "localhost"}, code: 2, errText: "is not NAME.DOMAIN"},
			{args: []string{"track-domain", "ls", "acme/mail"}, json: true},
			{args: []string{"track-domain", "rm", "acme/mail", "t.example.com"}, json: true},
			{args: []string{"track-domain", "rm", "acme/mail", "t.example.com"}, code: 1, errText: "track domain t.example.com not found on acme/mail"},
		})
		golden(t, "trackdomain", got)
	})
}
