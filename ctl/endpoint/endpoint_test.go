package endpoint_test

import (
	"context"
	"testing"

	"github.com/postalgo/postal/ctl/cli/clitest"
	"github.com/postalgo/postal/ctl/endpoint"
	"github.com/postalgo/postal/ctl/route"
	"github.com/postalgo/postal/daemon/store"
)

func TestEndpointCommands(t *testing.T) {
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
		got := e.Steps(t, endpoint.NewCmd, []clitest.Step{
			{Args: []string{"endpoint", "add", "acme/mail", "http:https://app.example.net/in", "--name", "app", "--format", "raw", "--encoding", "form"}, JSON: true},
			{Args: []string{"endpoint", "add", "acme/mail", "smtp:mx.example.net:465", "--ssl-mode", "tls"}, Out: "Added SMTPEndpoint mx.example.net:465"},
			{Args: []string{"endpoint", "add", "acme/mail", "address:team@example.net"}, Out: "Added AddressEndpoint team@example.net"},
			{Args: []string{"endpoint", "add", "acme/mail", "some-uuid"}, Code: 2, ErrText: "want http:URL, smtp:HOST:PORT or address:ADDRESS"},
			{Args: []string{"endpoint", "add", "acme/mail", "address:team@example.net", "--format", "raw"}, Code: 2, ErrText: "need an http: endpoint"},
			{Args: []string{"endpoint", "rm", "acme/mail", "nope"}, Code: 1, ErrText: "endpoint nope not found on acme/mail"},
		})
		clitest.Golden(t, "endpoint", got)
		list, err := e.Store.Endpoints(ctx, srv.ID)
		if err != nil || len(list) != 3 || list[0].Name != "app" || list[0].Options != "RawMessage FormData timeout=5" {
			t.Fatalf("endpoints = %+v, %v", list, err)
		}
		created := list[0]
		// A route refers to it by UUID; removing it makes the route reject.
		e.Steps(t, route.NewCmd, []clitest.Step{
			{Args: []string{"route", "add", "acme/mail", "in@example.com", "--endpoint", created.UUID}, Out: "endpoint HTTP https://app.example.net/in"},
		})
		e.Steps(t, endpoint.NewCmd, []clitest.Step{
			{Args: []string{"endpoint", "ls", "acme/mail"}, Out: "ssl_mode=TLS"},
			{Args: []string{"endpoint", "rm", "acme/mail", created.UUID}, Out: "1 route(s) now reject mail"},
		})
		routes, err := e.Store.Routes(ctx, srv.ID)
		if err != nil || len(routes) != 1 || routes[0].Mode != store.RouteModeReject {
			t.Fatalf("routes = %+v, %v", routes, err)
		}
	})
}
