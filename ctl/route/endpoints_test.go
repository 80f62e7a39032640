package route_test

import (
	"context"
	"strings"
	"testing"

	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/route"
	"github.com/postalgo/postal/daemon/store"
)

func TestRouteEndpointCommands(t *testing.T) {
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
		if _, err := e.Store.CreateRoute(ctx, srv.ID, store.NewRoute{DomainID: dom.ID, Name: "support", Mode: store.RouteModeEndpoint,
			Endpoint: &store.NewEndpoint{Type: store.EndpointHTTP, URL: "https://app.example.net/in"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Store.CreateRoute(ctx, srv.ID, store.NewRoute{DomainID: dom.ID, Name: "held", Mode: store.RouteModeHold}); err != nil {
			t.Fatal(err)
		}
		archive, err := e.Store.CreateEndpoint(ctx, srv.ID, store.NewEndpoint{Type: store.EndpointHTTP, URL: "https://archive.example.net/in"})
		if err != nil {
			t.Fatal(err)
		}
		relay, err := e.Store.CreateEndpoint(ctx, srv.ID, store.NewEndpoint{Type: store.EndpointSMTP, Hostname: "mx.example.net", Port: 2525})
		if err != nil {
			t.Fatal(err)
		}
		got := e.Steps(t, route.NewCmd, []clitest.Step{
			{Args: []string{"route", "endpoint", "add", "acme/mail", "support@example.com", archive.UUID}, JSON: true},
			{Args: []string{"route", "endpoint", "add", "acme/mail", "support@example.com", relay.UUID},
				Out: "Added SMTP mx.example.net:2525 to support@example.com: each message for it is also delivered there"},
			{Args: []string{"route", "endpoint", "add", "acme/mail", "support@example.com", relay.UUID}, Code: 1,
				ErrText: "is already an additional endpoint of support@example.com"},
			{Args: []string{"route", "endpoint", "add", "acme/mail", "held@example.com", relay.UUID}, Code: 1,
				ErrText: "route held@example.com is in mode Hold: only a route in mode endpoint has additional endpoints"},
			{Args: []string{"route", "endpoint", "add", "acme/mail", "support@example.com", "nope"}, Code: 1,
				ErrText: "endpoint nope not found on acme/mail; list endpoints with `postalctl endpoint ls acme/mail`"},
			{Args: []string{"route", "endpoint", "add", "acme/mail", "nobody@example.com", relay.UUID}, Code: 1,
				ErrText: "route nobody@example.com not found on acme/mail"},
			{Args: []string{"route", "endpoint", "ls", "acme/mail", "support@example.com"}, Out: "HTTP  https://archive.example.net/in"},
			{Args: []string{"route", "endpoint", "ls", "acme/mail", "support@example.com"}, JSON: true},
			{Args: []string{"route", "endpoint", "rm", "acme/mail", "support@example.com", relay.UUID}, JSON: true},
			{Args: []string{"route", "endpoint", "rm", "acme/mail", "support@example.com", relay.UUID}, Code: 1,
				ErrText: "is not an additional endpoint of support@example.com"},
		})
		got = strings.NewReplacer(archive.UUID, "<archive uuid>", relay.UUID, "<relay uuid>").Replace(got)
		clitest.Golden(t, "route_endpoint", got)
	})
}
