package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func TestEndpointsByID(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		mk := func(name string, ep store.NewEndpoint) *store.Route {
			t.Helper()
			r, err := s.CreateRoute(ctx, fx.Server.ID, store.NewRoute{DomainID: fx.Domain.ID, Name: name,
				Mode: store.RouteModeEndpoint, Endpoint: &ep})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return r
		}
		hr := mk("h", store.NewEndpoint{Type: store.EndpointHTTP, URL: "https://app.test/in", Encoding: store.EncodingFormData,
			Format: store.FormatRawMessage, StripReplies: true, ExcludeAttachments: true, Timeout: 30})
		sr := mk("s", store.NewEndpoint{Type: store.EndpointSMTP, Hostname: "mx.app.test", Port: 2525, SSLMode: store.SSLModeTLS})
		ar := mk("a", store.NewEndpoint{Type: store.EndpointAddress, Address: "x@app.test"})
		if got, err := s.RouteByID(ctx, hr.ID); err != nil || got.UUID != hr.UUID {
			t.Fatalf("RouteByID = %+v, %v", got, err)
		}
		h, err := s.HTTPEndpointByID(ctx, hr.EndpointID)
		if err != nil || h.URL != "https://app.test/in" || h.Encoding != store.EncodingFormData || h.Format != store.FormatRawMessage ||
			!h.StripReplies || h.IncludeAttachments || h.Timeout != 30 || h.ServerID != fx.Server.ID {
			t.Fatalf("HTTP endpoint = %+v, %v", h, err)
		}
		se, err := s.SMTPEndpointByID(ctx, sr.EndpointID)
		if err != nil || se.Hostname != "mx.app.test" || se.Port != 2525 || se.SSLMode != store.SSLModeTLS {
			t.Fatalf("SMTP endpoint = %+v, %v", se, err)
		}
		ae, err := s.AddressEndpointByID(ctx, ar.EndpointID)
		if err != nil || ae.Address != "x@app.test" {
			t.Fatalf("address endpoint = %+v, %v", ae, err)
		}
		// Defaults are Postal's.
		dr := mk("d", store.NewEndpoint{Type: store.EndpointHTTP, URL: "https://app.test/d"})
		if d, err := s.HTTPEndpointByID(ctx, dr.EndpointID); err != nil || d.Encoding != store.EncodingBodyAsJSON ||
			d.Format != store.FormatHash || d.StripReplies || !d.IncludeAttachments || d.Timeout != 5 {
			t.Fatalf("defaults = %+v, %v", d, err)
		}
		if _, err := s.HTTPEndpointByID(ctx, 9999); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown endpoint: %v", err)
		}
		for _, bad := range []store.NewEndpoint{
			{Type: store.EndpointHTTP, URL: "https://x.test", Timeout: 61},
			{Type: store.EndpointHTTP, URL: "https://x.test", Format: "Other"},
			{Type: store.EndpointSMTP, Hostname: "x.test", Port: 25, SSLMode: "STARTLS"},
		} {
			if _, err := s.CreateRoute(ctx, fx.Server.ID, store.NewRoute{DomainID: fx.Domain.ID, Name: "bad",
				Mode: store.RouteModeEndpoint, Endpoint: &bad}); err == nil {
				t.Errorf("endpoint %+v accepted", bad)
			}
		}
	})
}

func TestEndpointLifecycle(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		h, err := s.CreateEndpoint(ctx, fx.Server.ID, store.NewEndpoint{Type: store.EndpointHTTP, Name: "app",
			URL: "https://app.test/in", Format: store.FormatRawMessage, StripReplies: true})
		if err != nil || h.Name != "app" || h.Target != "https://app.test/in" || h.Options != "RawMessage BodyAsJSON timeout=5 strip_replies" {
			t.Fatalf("create http = %+v, %v", h, err)
		}
		sm, err := s.CreateEndpoint(ctx, fx.Server.ID, store.NewEndpoint{Type: store.EndpointSMTP, Hostname: "mx.app.test", Port: 25})
		if err != nil || sm.Target != "mx.app.test:25" || sm.Options != "ssl_mode=Auto" {
			t.Fatalf("create smtp = %+v, %v", sm, err)
		}
		// Two routes share the HTTP endpoint by its UUID.
		for _, n := range []string{"a", "b"} {
			r, err := s.CreateRoute(ctx, fx.Server.ID, store.NewRoute{DomainID: fx.Domain.ID, Name: n, Mode: store.RouteModeEndpoint,
				Endpoint: &store.NewEndpoint{UUID: h.UUID}})
			if err != nil || r.EndpointType != store.EndpointHTTP || r.EndpointID != h.ID || r.Endpoint != "https://app.test/in" {
				t.Fatalf("route %s = %+v, %v", n, r, err)
			}
		}
		if _, err := s.CreateRoute(ctx, fx.Server.ID, store.NewRoute{DomainID: fx.Domain.ID, Name: "c", Mode: store.RouteModeEndpoint,
			Endpoint: &store.NewEndpoint{UUID: "no-such-uuid"}}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown endpoint uuid: %v", err)
		}
		list, err := s.Endpoints(ctx, fx.Server.ID)
		if err != nil || len(list) != 2 || list[0].Routes != 2 || list[1].Routes != 0 {
			t.Fatalf("endpoints = %+v, %v", list, err)
		}
		// Deleting it switches its routes to Reject, as Postal does.
		n, err := s.DeleteEndpoint(ctx, fx.Server.ID, h.UUID)
		if err != nil || n != 2 {
			t.Fatalf("delete = %d, %v", n, err)
		}
		routes, _ := s.Routes(ctx, fx.Server.ID)
		for _, r := range routes {
			if r.Mode != store.RouteModeReject || r.EndpointType != "" {
				t.Errorf("route after delete = %+v", r)
			}
		}
		if _, err := s.DeleteEndpoint(ctx, fx.Server.ID, h.UUID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
}
