package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func ptr[T any](v T) *T { return &v }

func TestAdminServerUpdateSuspendDelete(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		srv, err := s.UpdateServer(ctx, fx.Server.ID, store.ServerSettings{Mode: ptr(store.ModeDevelopment), SendLimit: ptr(int64(500)),
			SpamThreshold: ptr(7.5), PrivacyMode: ptr(true), MessageRetentionDays: ptr(10)})
		if err != nil {
			t.Fatal(err)
		}
		if srv.Mode != store.ModeDevelopment || srv.SendLimit == nil || *srv.SendLimit != 500 || srv.SpamThreshold != 7.5 ||
			!srv.PrivacyMode || srv.MessageRetentionDays != 10 || srv.AllowSender {
			t.Fatalf("updated server = %+v", srv)
		}
		srv, err = s.UpdateServer(ctx, fx.Server.ID, store.ServerSettings{SendLimit: ptr(int64(0))})
		if err != nil || srv.SendLimit != nil {
			t.Fatalf("clearing send limit: %v, %v", srv.SendLimit, err)
		}
		if _, err := s.UpdateServer(ctx, fx.Server.ID, store.ServerSettings{Mode: ptr("Turbo")}); err == nil {
			t.Fatal("mode Turbo accepted")
		}
		if _, err := s.UpdateServer(ctx, 9999, store.ServerSettings{PrivacyMode: ptr(false)}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update unknown server: %v", err)
		}
		srv, err = s.SuspendServer(ctx, fx.Server.ID, "abuse")
		if err != nil || !srv.Suspended() || srv.SuspensionReason != "abuse" {
			t.Fatalf("suspend: %+v %v", srv, err)
		}
		srv, err = s.UnsuspendServer(ctx, fx.Server.ID)
		if err != nil || srv.Suspended() || srv.SuspensionReason != "" {
			t.Fatalf("unsuspend: %+v %v", srv, err)
		}
		if err := s.DeleteServer(ctx, fx.Server.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DomainByID(ctx, fx.Domain.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("domain survived its server: %v", err)
		}
		if err := s.DeleteServer(ctx, fx.Server.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
}

func TestAdminDomainDNSCheck(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		d, err := s.CreateDomain(ctx, fx.Server.ID, store.NewDomain{Name: "other.com", VerificationToken: "tok", DKIMIdentifierString: "XYZABC"})
		if err != nil {
			t.Fatal(err)
		}
		at := time.UnixMicro(time.Now().UnixMicro())
		due, err := s.DomainsDueForDNSCheck(ctx, at.Add(-time.Hour), 0, 10)
		if err != nil || len(due) != 2 {
			t.Fatalf("due before any check = %d, %v", len(due), err)
		}
		got, err := s.SaveDomainDNSCheck(ctx, d.ID, store.DomainDNSCheck{
			SPF: store.DNSCheck{Status: store.DNSStatusOK}, DKIM: store.DNSCheck{Status: store.DNSStatusInvalid, Error: "wrong"},
			MX: store.DNSCheck{Status: store.DNSStatusMissing, Error: "none"}, ReturnPath: store.DNSCheck{Status: store.DNSStatusOK},
			Verified: true, CheckedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		if got.SPF.Status != "OK" || got.DKIM != (store.DNSCheck{Status: "Invalid", Error: "wrong"}) || got.MX.Error != "none" ||
			!got.DNSCheckedAt.Equal(at) || !got.VerifiedAt.Equal(at) {
			t.Fatalf("saved check = %+v", got)
		}
		// A later check neither moves verified_at nor unverifies.
		got, err = s.SaveDomainDNSCheck(ctx, d.ID, store.DomainDNSCheck{CheckedAt: at.Add(time.Minute)})
		if err != nil || !got.VerifiedAt.Equal(at) || got.SPF.Status != "" {
			t.Fatalf("second check: %+v %v", got, err)
		}
		due, err = s.DomainsDueForDNSCheck(ctx, at.Add(-time.Hour), 0, 10)
		if err != nil || len(due) != 1 || due[0].ID != fx.Domain.ID {
			t.Fatalf("due after a check = %v, %v", due, err)
		}
		if err := s.DeleteDomain(ctx, fx.Server.ID+1, d.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete through another server: %v", err)
		}
		if err := s.DeleteDomain(ctx, fx.Server.ID, d.ID); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAdminRoutes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		tests := []struct {
			name     string
			route    store.NewRoute
			endpoint string
		}{
			{"http endpoint", store.NewRoute{Name: "hooks", Mode: store.RouteModeEndpoint,
				Endpoint: &store.NewEndpoint{Type: store.EndpointHTTP, URL: "https://app.example.net/in"}}, "https://app.example.net/in"},
			{"smtp endpoint", store.NewRoute{Name: "relay", Mode: store.RouteModeEndpoint,
				Endpoint: &store.NewEndpoint{Type: store.EndpointSMTP, Hostname: "mx.example.net", Port: 2525}}, "mx.example.net:2525"},
			{"address endpoint", store.NewRoute{Name: "Fwd", Mode: store.RouteModeEndpoint, SpamMode: store.SpamModeFail,
				Endpoint: &store.NewEndpoint{Type: store.EndpointAddress, Address: "a@example.net"}}, "a@example.net"},
			{"hold", store.NewRoute{Name: "*", Mode: store.RouteModeHold}, ""},
		}
		for _, tt := range tests {
			tt.route.DomainID = fx.Domain.ID
			r, err := s.CreateRoute(ctx, fx.Server.ID, tt.route)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if r.Endpoint != tt.endpoint || r.Domain != "example.com" || r.Token == "" || r.SpamMode == "" {
				t.Fatalf("%s: route = %+v", tt.name, r)
			}
		}
		routes, err := s.Routes(ctx, fx.Server.ID)
		if err != nil || len(routes) != 4 || routes[0].Address() != "*@example.com" || routes[1].Name != "fwd" {
			t.Fatalf("routes = %v, %v", routes, err)
		}
		if _, err := s.CreateRoute(ctx, fx.Server.ID, store.NewRoute{DomainID: fx.Domain.ID, Name: "hooks", Mode: store.RouteModeAccept}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate route: %v", err)
		}
		// A duplicate with an endpoint leaves no endpoint behind.
		_, err = s.CreateRoute(ctx, fx.Server.ID, store.NewRoute{DomainID: fx.Domain.ID, Name: "relay", Mode: store.RouteModeEndpoint,
			Endpoint: &store.NewEndpoint{Type: store.EndpointSMTP, Hostname: "orphan.example.net", Port: 25}})
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate route with endpoint: %v", err)
		}
		if n := countRows(t, s, "smtp_endpoints"); n != 1 {
			t.Fatalf("smtp endpoints after a refused route = %d, want 1", n)
		}
		for _, r := range routes {
			if err := s.DeleteRoute(ctx, fx.Server.ID, r.UUID); err != nil {
				t.Fatal(err)
			}
		}
		for _, table := range []string{"routes", "http_endpoints", "smtp_endpoints", "address_endpoints"} {
			if n := countRows(t, s, table); n != 0 {
				t.Fatalf("%s rows after deleting every route = %d", table, n)
			}
		}
		if err := s.DeleteRoute(ctx, fx.Server.ID, routes[0].UUID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
}

// countRows counts a table's rows through the store's own listings.
func countRows(t *testing.T, s *store.Store, table string) int {
	t.Helper()
	n, err := s.CountRows(context.Background(), table)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAdminWebhooks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		w, err := s.CreateWebhook(ctx, fx.Server.ID, store.NewWebhook{Name: "app", URL: "https://app.example.net/hook",
			Events: []string{"MessageSent", "MessageBounced", "MessageSent"}, Enabled: true, Sign: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(w.Events) != 2 || w.Events[0] != "MessageBounced" || w.AllEvents || !w.Enabled || !w.Sign {
			t.Fatalf("webhook = %+v", w)
		}
		all, err := s.CreateWebhook(ctx, fx.Server.ID, store.NewWebhook{Name: "all", URL: "https://all.example.net/", AllEvents: true})
		if err != nil || len(all.Events) != 0 || !all.AllEvents {
			t.Fatalf("all-events webhook = %+v, %v", all, err)
		}
		if _, err := s.CreateWebhook(ctx, fx.Server.ID, store.NewWebhook{Name: "none", URL: "https://x.example.net/"}); err == nil {
			t.Fatal("webhook without events accepted")
		}
		list, err := s.Webhooks(ctx, fx.Server.ID)
		if err != nil || len(list) != 2 || len(list[0].Events) != 2 {
			t.Fatalf("webhooks = %v, %v", list, err)
		}
		if err := s.DeleteWebhook(ctx, fx.Server.ID, w.UUID); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, s, "webhook_events"); n != 0 {
			t.Fatalf("webhook events after delete = %d", n)
		}
	})
}

func TestAdminIPPools(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		a, err := s.CreateIPPool(ctx, "main", true)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.CreateIPPool(ctx, "bulk", true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateIPPool(ctx, "main", false); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate pool: %v", err)
		}
		pools, err := s.IPPools(ctx)
		if err != nil || len(pools) != 2 || pools[0].Name != "bulk" || !pools[0].Default || pools[1].Default {
			t.Fatalf("pools = %+v, %v (only the newest default stays default)", pools, err)
		}
		if _, err := s.CreateIPAddress(ctx, store.NewIPAddress{PoolID: a.ID, IPv4: "192.0.2.1", Hostname: "o1.example.com"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateIPAddress(ctx, store.NewIPAddress{PoolID: b.ID, IPv4: "192.0.2.1", Hostname: "o2.example.com"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate address: %v", err)
		}
		if _, err := s.CreateIPAddress(ctx, store.NewIPAddress{PoolID: 999, IPv4: "192.0.2.9", Hostname: "x"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("address in unknown pool: %v", err)
		}
		addrs, err := s.IPAddresses(ctx, a.ID)
		if err != nil || len(addrs) != 1 || addrs[0].Priority != 100 || addrs[0].Pool != "main" {
			t.Fatalf("addresses = %+v, %v", addrs, err)
		}
		rule, err := s.CreateIPPoolRule(ctx, store.NewIPPoolRule{ServerID: fx.Server.ID, PoolID: b.ID, To: []string{"gmail.com", "yahoo.com"}})
		if err != nil || rule.Owner != "acme/mail" || len(rule.To) != 2 || len(rule.From) != 0 {
			t.Fatalf("server rule = %+v, %v", rule, err)
		}
		orgRule, err := s.CreateIPPoolRule(ctx, store.NewIPPoolRule{OrganizationID: fx.Org.ID, PoolID: a.ID, From: []string{"news@example.com"}})
		if err != nil || orgRule.Owner != "acme" {
			t.Fatalf("org rule = %+v, %v", orgRule, err)
		}
		if _, err := s.CreateIPPoolRule(ctx, store.NewIPPoolRule{ServerID: fx.Server.ID, PoolID: a.ID}); err == nil {
			t.Fatal("rule matching nothing accepted")
		}
		if rules, err := s.IPPoolRules(ctx, fx.Org.ID, 0); err != nil || len(rules) != 1 || rules[0].UUID != orgRule.UUID {
			t.Fatalf("org rules = %v, %v", rules, err)
		}
		if err := s.DeleteIPPool(ctx, "main"); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, s, "ip_addresses"); n != 0 {
			t.Fatalf("addresses after their pool was deleted = %d", n)
		}
		if err := s.DeleteIPPoolRule(ctx, rule.UUID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteIPPoolRule(ctx, rule.UUID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second rule delete: %v", err)
		}
	})
}

func TestAdminTrackDomainsAndSuppressions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		td, err := s.CreateTrackDomain(ctx, fx.Server.ID, store.NewTrackDomain{DomainID: fx.Domain.ID, Name: "Click", SSLEnabled: true, TrackClicks: true})
		if err != nil || td.FullName() != "click.example.com" || !td.SSLEnabled || td.TrackLoads {
			t.Fatalf("track domain = %+v, %v", td, err)
		}
		if _, err := s.CreateTrackDomain(ctx, fx.Server.ID, store.NewTrackDomain{DomainID: fx.Domain.ID, Name: "click"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate track domain: %v", err)
		}
		at := time.UnixMicro(time.Now().UnixMicro())
		if err := s.SaveTrackDomainDNSCheck(ctx, td.ID, store.DNSCheck{Status: "OK"}, at); err != nil {
			t.Fatal(err)
		}
		due, err := s.TrackDomainsDueForDNSCheck(ctx, at.Add(-time.Hour), 0, 10)
		if err != nil || len(due) != 0 {
			t.Fatalf("due track domains after a check = %v, %v", due, err)
		}
		list, err := s.TrackDomains(ctx, fx.Server.ID)
		if err != nil || len(list) != 1 || list[0].DNS.Status != "OK" || !list[0].DNSCheckedAt.Equal(at) {
			t.Fatalf("track domains = %+v, %v", list, err)
		}
		if err := s.DeleteTrackDomain(ctx, fx.Server.ID, td.UUID); err != nil {
			t.Fatal(err)
		}

		if err := s.AddSuppressions(ctx, []store.NewSuppression{{ServerID: fx.Server.ID, Address: "B@example.net", Reason: "bounce",
			KeepUntil: at.Add(time.Hour)}, {ServerID: fx.Server.ID, Address: "a@example.net", KeepUntil: at}}); err != nil {
			t.Fatal(err)
		}
		sup, err := s.ServerSuppressions(ctx, fx.Server.ID)
		if err != nil || len(sup) != 2 || sup[0].Address != "a@example.net" || sup[1].Reason != "bounce" {
			t.Fatalf("suppressions = %+v, %v", sup, err)
		}
		one, err := s.ServerSuppression(ctx, fx.Server.ID, "b@EXAMPLE.net")
		if err != nil || !one.KeepUntil.Equal(at.Add(time.Hour)) {
			t.Fatalf("suppression lookup = %+v, %v", one, err)
		}
		if _, err := s.ServerSuppression(ctx, fx.Server.ID, "c@example.net"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown suppression: %v", err)
		}
	})
}
