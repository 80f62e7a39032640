package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func TestAdditionalEndpoints(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		route, err := s.CreateRoute(ctx, fx.Server.ID, store.NewRoute{DomainID: fx.Domain.ID, Name: "in",
			Mode: store.RouteModeEndpoint, Endpoint: &store.NewEndpoint{Type: store.EndpointHTTP, URL: "https://app.test/primary"}})
		if err != nil {
			t.Fatal(err)
		}
		hold, err := s.CreateRoute(ctx, fx.Server.ID, store.NewRoute{DomainID: fx.Domain.ID, Name: "held", Mode: store.RouteModeHold})
		if err != nil {
			t.Fatal(err)
		}
		wild, err := s.CreateRoute(ctx, fx.Server.ID, store.NewRoute{DomainID: fx.Domain.ID, Name: "*", Mode: store.RouteModeEndpoint,
			Endpoint: &store.NewEndpoint{Type: store.EndpointHTTP, URL: "https://app.test/wild"}})
		if err != nil {
			t.Fatal(err)
		}
		mk := func(ep store.NewEndpoint) *store.Endpoint {
			t.Helper()
			e, err := s.CreateEndpoint(ctx, fx.Server.ID, ep)
			if err != nil {
				t.Fatal(err)
			}
			return e
		}
		h := mk(store.NewEndpoint{Type: store.EndpointHTTP, URL: "https://app.test/extra"})
		sm := mk(store.NewEndpoint{Type: store.EndpointSMTP, Hostname: "mx.app.test", Port: 2525})
		ad := mk(store.NewEndpoint{Type: store.EndpointAddress, Address: "team@app.test"})

		for _, e := range []*store.Endpoint{h, sm, ad} {
			if _, err := s.AddAdditionalEndpoint(ctx, fx.Server.ID, route.ID, e.UUID); err != nil {
				t.Fatalf("add %s: %v", e.Type, err)
			}
		}
		list, err := s.AdditionalEndpoints(ctx, route.ID)
		if err != nil || len(list) != 3 {
			t.Fatalf("list = %v, %v", list, err)
		}
		if list[0].Type != store.EndpointHTTP || list[0].Target != "https://app.test/extra" || list[0].UUID != h.UUID ||
			list[1].Target != "mx.app.test:2525" || list[2].Target != "team@app.test" || list[2].EndpointID != ad.ID {
			t.Errorf("list = %+v %+v %+v", list[0], list[1], list[2])
		}

		primary, err := s.Endpoints(ctx, fx.Server.ID)
		if err != nil {
			t.Fatal(err)
		}
		refusals := []struct {
			name  string
			route int64
			uuid  string
			want  error
		}{
			{"twice", route.ID, h.UUID, store.ErrConflict},
			{"unknown endpoint", route.ID, "nope", store.ErrNotFound},
			{"unknown route", 99999, h.UUID, store.ErrNotFound},
			{"not mode Endpoint", hold.ID, h.UUID, store.ErrNotEndpointRoute},
			{"the primary", route.ID, primary[0].UUID, nil},
			{"smtp on *", wild.ID, sm.UUID, nil},
		}
		for _, r := range refusals {
			_, err := s.AddAdditionalEndpoint(ctx, fx.Server.ID, r.route, r.uuid)
			if err == nil || (r.want != nil && !errors.Is(err, r.want)) {
				t.Errorf("%s: err = %v, want %v", r.name, err, r.want)
			}
		}
		if _, err := s.AddAdditionalEndpoint(ctx, fx.Server.ID, wild.ID, h.UUID); err != nil {
			t.Errorf("http on *: %v", err)
		}

		if err := s.RemoveAdditionalEndpoint(ctx, fx.Server.ID, route.ID, sm.UUID); err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveAdditionalEndpoint(ctx, fx.Server.ID, route.ID, sm.UUID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second remove: %v", err)
		}
		// Deleting an endpoint takes it off every route; deleting a route
		// takes its rows with it and keeps endpoints another route uses.
		if _, err := s.DeleteEndpoint(ctx, fx.Server.ID, ad.UUID); err != nil {
			t.Fatal(err)
		}
		if list, _ := s.AdditionalEndpoints(ctx, route.ID); len(list) != 1 || list[0].UUID != h.UUID {
			t.Errorf("after deleting the address endpoint: %+v", list)
		}
		if err := s.DeleteRoute(ctx, fx.Server.ID, route.UUID); err != nil {
			t.Fatal(err)
		}
		if list, _ := s.AdditionalEndpoints(ctx, route.ID); len(list) != 0 {
			t.Errorf("rows of a deleted route: %+v", list)
		}
		if list, _ := s.AdditionalEndpoints(ctx, wild.ID); len(list) != 1 {
			t.Errorf("the * route lost its additional endpoint: %+v", list)
		}
	})
}

// TestMessagesForAdditionalEndpoints: a submission may reuse a stored raw
// message, and its messages keep the endpoint they are for.
func TestMessagesForAdditionalEndpoints(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		raw := []byte("Subject: x\r\n\r\nbody\r\n")
		acc, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: raw, Messages: []store.NewMessage{{ServerID: fx.Server.ID,
			Scope: store.ScopeIncoming, RcptTo: "in@example.com"}}}})
		if err != nil {
			t.Fatal(err)
		}
		first, _ := s.Message(ctx, acc[0][0].MessageID)
		acc, err = s.InsertSubmissions(ctx, []store.Submission{{Raw: raw, RawMessageID: first.RawMessageID,
			Messages: []store.NewMessage{{ServerID: fx.Server.ID, Scope: store.ScopeIncoming, RcptTo: "in@example.com",
				EndpointType: store.EndpointSMTP, EndpointID: 42, Queue: true, QueueDomain: "example.com"}}}})
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.Message(ctx, acc[0][0].MessageID)
		if err != nil || m.RawMessageID != first.RawMessageID || m.EndpointType != store.EndpointSMTP || m.EndpointID != 42 ||
			m.Size != int64(len(raw)) || acc[0][0].QueuedID == 0 {
			t.Fatalf("copy = %+v, %v", m, err)
		}
		if first.EndpointType != "" || first.EndpointID != 0 {
			t.Errorf("primary message names an endpoint: %+v", first)
		}
	})
}
