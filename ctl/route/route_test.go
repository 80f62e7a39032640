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
		got := e.Steps(t, route.NewCmd, []clitest.Step{
			{Args: []string{"route", "add", "acme/mail", "Support@example.com", "--endpoint", "http:https://app.example.net/in"}, JSON: true},
			{Args: []string{"route", "add", "acme/mail", "relay@example.com", "--mode", "endpoint", "--endpoint", "smtp:mx.example.net:2525", "--spam-mode", "quarantine"}, JSON: true},
			{Args: []string{"route", "add", "acme/mail", "fwd@example.com", "--endpoint", "address:team@example.net"}, Out: "endpoint Address team@example.net"},
			{Args: []string{"route", "add", "acme/mail", "*@example.com", "--mode", "hold"}, JSON: true},
			{Args: []string{"route", "add", "acme/mail", "support@example.com", "--mode", "accept"}, Code: 1, ErrText: "a route for support@example.com already exists on acme/mail"},
			{Args: []string{"route", "add", "acme/mail", "x@nope.com", "--mode", "accept"}, Code: 1, ErrText: "domain nope.com is not on acme/mail; add it with `postalctl domain add acme/mail nope.com`"},
			{Args: []string{"route", "add", "acme/mail", "x@example.com", "--endpoint", "http:not a url"}, Code: 2, ErrText: `is not an http(s) URL`},
			{Args: []string{"route", "add", "acme/mail", "x@example.com", "--endpoint", "address:not-an-address"}, Code: 2, ErrText: `"not-an-address" is not an e-mail address`},
			{Args: []string{"route", "add", "acme/mail", "x@example.com", "--endpoint", "smtp:mx.example.net:70000"}, Code: 2, ErrText: "port from 1 to 65535"},
			{Args: []string{"route", "add", "acme/mail", "x@example.com", "--endpoint", "ftp:x"}, Code: 2, ErrText: "want http:URL, smtp:HOST:PORT, address:ADDRESS or an endpoint UUID"},
			{Args: []string{"route", "add", "acme/mail", "x@example.com", "--mode", "teleport"}, Code: 2, ErrText: `--mode "teleport"`},
			{Args: []string{"route", "add", "acme/mail", "x@example.com", "--mode", "hold", "--endpoint", "address:a@b.com"}, Code: 2, ErrText: "--endpoint is only used with --mode endpoint"},
			{Args: []string{"route", "add", "acme/mail", "x@example.com"}, Code: 2, ErrText: "give --mode"},
			{Args: []string{"route", "add", "acme/mail", "example.com", "--mode", "hold"}, Code: 2, ErrText: "is not NAME@DOMAIN"},
			{Args: []string{"route", "ls", "acme/mail"}, JSON: true},
			{Args: []string{"route", "rm", "acme/mail", "relay@example.com"}, JSON: true},
			{Args: []string{"route", "rm", "acme/mail", "relay@example.com"}, Code: 1, ErrText: "route relay@example.com not found on acme/mail"},
		})
		clitest.Golden(t, "route", got)
		// Nothing was half-created by the refused commands: 3 routes, 2 endpoints left.
		routes, err := e.Store.Routes(ctx, srv.ID)
		if err != nil || len(routes) != 3 {
			t.Fatalf("routes left = %d, %v", len(routes), err)
		}
	})
}

func TestRouteAddEndpointOptions(t *testing.T) {
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
		e.Steps(t, route.NewCmd, []clitest.Step{
			{Args: []string{"route", "add", "acme/mail", "raw@example.com", "--endpoint", "http:https://app.example.net/raw",
				"--format", "raw", "--encoding", "form", "--strip-replies", "--no-attachments", "--timeout", "30"}, Out: "endpoint HTTP"},
			{Args: []string{"route", "add", "acme/mail", "tls@example.com", "--endpoint", "smtp:mx.example.net:465", "--ssl-mode", "tls"}, Out: "endpoint SMTP"},
			{Args: []string{"route", "add", "acme/mail", "x@example.com", "--endpoint", "smtp:mx.example.net:25", "--format", "raw"}, Code: 2, ErrText: "need an http: endpoint"},
			{Args: []string{"route", "add", "acme/mail", "x@example.com", "--endpoint", "http:https://a.example.net/", "--ssl-mode", "tls"}, Code: 2, ErrText: "--ssl-mode needs an smtp: endpoint"},
			{Args: []string{"route", "add", "acme/mail", "x@example.com", "--endpoint", "http:https://a.example.net/", "--timeout", "90"}, Code: 2, ErrText: "want 5 to 60 seconds"},
			{Args: []string{"route", "add", "acme/mail", "x@example.com", "--endpoint", "smtp:mx.example.net:25", "--ssl-mode", "STARTLS"}, Code: 2, ErrText: "want none, auto, starttls or tls"},
			{Args: []string{"route", "add", "acme/mail", "__returnpath__", "--endpoint", "address:a@example.net"}, Code: 2, ErrText: "needs --endpoint http:URL"},
			{Args: []string{"route", "add", "acme/mail", "__returnpath__", "--endpoint", "http:https://app.example.net/rp"}, Out: "unmatched bounces go to https://app.example.net/rp"},
			{Args: []string{"route", "add", "acme/mail", "__returnpath__", "--endpoint", "http:https://app.example.net/rp"}, Code: 1, ErrText: "already has a __returnpath__ route"},
		})
		routes, err := e.Store.Routes(ctx, srv.ID)
		if err != nil || len(routes) != 3 {
			t.Fatalf("routes = %v, %v", routes, err)
		}
		for _, r := range routes {
			if r.Name == store.ReturnPathRouteName {
				continue
			}
			switch r.EndpointType {
			case store.EndpointHTTP:
				h, err := e.Store.HTTPEndpointByID(ctx, r.EndpointID)
				if err != nil || h.Format != store.FormatRawMessage || h.Encoding != store.EncodingFormData || !h.StripReplies ||
					h.IncludeAttachments || h.Timeout != 30 {
					t.Errorf("http endpoint %+v, %v", h, err)
				}
			case store.EndpointSMTP:
				s, err := e.Store.SMTPEndpointByID(ctx, r.EndpointID)
				if err != nil || s.SSLMode != store.SSLModeTLS {
					t.Errorf("smtp endpoint %+v, %v", s, err)
				}
			}
		}
	})
}
