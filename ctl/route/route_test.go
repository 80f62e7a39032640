package route_test

import (
	"context"
	"testing"

	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/route"
	"github.com/postalgo/postal/daemon/store"
)

func TestRouteCommands(t *testing.T) {
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
		got := run(t, e, route.NewCmd, []step{
			{args: []string{"route", "add", "acme/mail", "Support@example.com", "--endpoint", "http:https://app.example.net/in"}, json: true},
			{args: []string{"route", "add", "acme/mail", "relay@example.com", "--mode", "endpoint", "--endpoint", "smtp:mx.example.net:2525", "--spam-mode", "quarantine"}, json: true},
			{args: []string{"route", "add", "acme/mail", "fwd@example.com", "--endpoint", "address:team@example.net"}, out: "endpoint Address team@example.net"},
			{args: []string{"route", "add", "acme/mail", "*@example.com", "--mode", "hold"}, json: true},
			{args: []string{"route", "add", "acme/mail", "support@example.com", "--mode", "accept"}, code: 1, errText: "a route for support@example.com already exists on acme/mail"},
			{args: []string{"route", "add", "acme/mail", "x@nope.com", "--mode", "accept"}, code: 1, errText: "domain nope.com is not on acme/mail; add it with `postalctl domain add acme/mail nope.com`"},
			{args: []string{"route", "add", "acme/mail", "x@example.com", "--endpoint", "http:not a url"}, code: 2, errText: `is not an http(s) URL`},
			{args: []string{"route", "add", "acme/mail", "x@example.com", "--endpoint", "address:not-an-address"}, code: 2, errText: `"not-an-address" is not an e-mail address`},
			{args: []string{"route", "add", "acme/mail", "x@example.com", "--endpoint", "smtp:mx.example.net:70000"}, code: 2, errText: "port from 1 to 65535"},
			{args: []string{"route", "add", "acme/mail", "x@example.com", "--endpoint", "ftp:x"}, code: 2, errText: "want http:URL, smtp:HOST:PORT or address:ADDRESS"},
			{args: []string{"route", "add", "acme/mail", "x@example.com", "--mode", "teleport"}, code: 2, errText: `--mode "teleport"`},
			{args: []string{"route", "add", "acme/mail", "x@example.com", "--mode", "hold", "--endpoint", "address:a@b.com"}, code: 2, errText: "--endpoint is only used with --mode endpoint"},
			{args: []string{"route", "add", "acme/mail", "x@example.com"}, code: 2, errText: "give --mode"},
			{args: []string{"route", "add", "acme/mail", "example.com", "--mode", "hold"}, code: 2, errText: "is not NAME@DOMAIN"},
			{args: []string{"route", "ls", "acme/mail"}, json: true},
			{args: []string{"route", "rm", "acme/mail", "relay@example.com"}, json: true},
			{args: []string{"route", "rm", "acme/mail", "relay@example.com"}, code: 1, errText: "route relay@example.com not found on acme/mail"},
		})
		golden(t, "route", got)
		// Nothing was half-created by the refused commands: 3 routes, 2 endpoints left.
		routes, err := e.Store.Routes(ctx, srv.ID)
		if err != nil || len(routes) != 3 {
			t.Fatalf("routes left = %d, %v", len(routes), err)
		}
	})
}
