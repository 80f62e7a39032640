package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func TestRouteLookupsFollowPostalRules(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		// A second server holds an unverified copy of example.com with a
		// catch-all route: it must never capture example.com's mail.
		other, err := s.CreateServer(ctx, "acme", store.NewServer{Name: "Other", Permalink: "other"})
		if err != nil {
			t.Fatal(err)
		}
		unverified, err := s.CreateDomain(ctx, other.ID, store.NewDomain{Name: "example.com", VerificationToken: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRoute(ctx, other.ID, store.NewRoute{DomainID: unverified.ID, Name: "*", Mode: store.RouteModeAccept}); err != nil {
			t.Fatal(err)
		}

		sales, err := s.CreateRoute(ctx, fx.Server.ID, store.NewRoute{DomainID: fx.Domain.ID, Name: "Sales", Mode: store.RouteModeAccept})
		if err != nil {
			t.Fatal(err)
		}

		for _, tc := range []struct {
			name, local, domain string
			wantID              int64 // 0: not found
		}{
			{"exact name", "sales", "example.com", sales.ID},
			{"case-insensitive", "SALES", "Example.COM.", sales.ID},
			{"no route and only an unverified wildcard", "support", "example.com", 0},
			{"unknown domain", "sales", "example.org", 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r, err := s.RouteForAddress(ctx, tc.local, tc.domain)
				if tc.wantID == 0 {
					if !errors.Is(err, store.ErrNotFound) {
						t.Fatalf("RouteForAddress = %+v, %v; want ErrNotFound", r, err)
					}
					return
				}
				if err != nil || r.ID != tc.wantID {
					t.Fatalf("RouteForAddress = %+v, %v; want route %d", r, err, tc.wantID)
				}
			})
		}

		wild, err := s.CreateRoute(ctx, fx.Server.ID, store.NewRoute{DomainID: fx.Domain.ID, Name: "*", Mode: store.RouteModeHold})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := s.RouteForAddress(ctx, "support", "example.com"); err != nil || r.ID != wild.ID {
			t.Fatalf("wildcard lookup = %+v, %v; want route %d", r, err, wild.ID)
		}
		if r, err := s.RouteForAddress(ctx, "sales", "example.com"); err != nil || r.ID != sales.ID {
			t.Fatalf("exact name must win over the wildcard: %+v, %v", r, err)
		}

		if r, err := s.RouteByToken(ctx, sales.Token); err != nil || r.ID != sales.ID {
			t.Fatalf("RouteByToken = %+v, %v", r, err)
		}
		if _, err := s.RouteByToken(ctx, "nosuchtk"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown token: %v, want ErrNotFound", err)
		}

	})
}

func TestServerByToken(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		got, err := s.ServerByToken(ctx, fx.Server.Token)
		if err != nil || got.ID != fx.Server.ID || got.Path() != "acme/mail" {
			t.Fatalf("ServerByToken = %+v, %v", got, err)
		}
		if _, err := s.ServerByToken(ctx, "zzzzzz"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown token: %v, want ErrNotFound", err)
		}
	})
}
