package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// importAll writes one of every record kind and returns what each upsert did.
func importAll(ctx context.Context, t *testing.T, s *store.Store, dry bool, serverName string, events []string) map[string]store.ImportChange {
	t.Helper()
	got := make(map[string]store.ImportChange)
	created := time.Date(2023, 5, 1, 12, 0, 0, 0, time.UTC)
	err := s.Import(ctx, dry, func(im *store.Import) error {
		note := func(kind string) func(int64, store.ImportChange, error) int64 {
			return func(id int64, ch store.ImportChange, err error) int64 {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", kind, err)
				}
				if id == 0 {
					t.Fatalf("%s: id 0", kind)
				}
				got[kind] = ch
				return id
			}
		}
		poolID := note("pool")(im.IPPool(ctx, store.ImportIPPool{UUID: "pool-uuid", Name: "main", Default: true, CreatedAt: created}))
		note("ip")(im.IPAddress(ctx, store.ImportIPAddress{PoolID: poolID, IPv4: "192.0.2.10", Hostname: "mta1.example.net", Priority: 50}))
		orgID := note("org")(im.Organization(ctx, store.ImportOrganization{UUID: "org-uuid", Name: "Acme", Permalink: "acme", CreatedAt: created}))
		limit := int64(1000)
		srvID := note("server")(im.Server(ctx, store.ImportServer{UUID: "srv-uuid", OrganizationID: orgID, Name: serverName, Permalink: "mail",
			Mode: store.ModeLive, Token: "AbCdEf", IPPoolID: poolID, SendLimit: &limit, MessageRetentionDays: 60,
			RawMessageRetentionDays: 30, RawMessageRetentionSize: 2048, SpamThreshold: 5, SpamFailureThreshold: 20, CreatedAt: created}))
		domID := note("domain")(im.Domain(ctx, store.ImportDomain{UUID: "dom-uuid", ServerID: srvID, Name: "Example.COM",
			VerificationToken: "tok", VerificationMethod: "DNS", VerifiedAt: created, DKIMPrivateKey: "PEM",
			DKIMIdentifierString: "QWERTY", Outgoing: true, Incoming: true, SPF: store.DNSCheck{Status: "OK"}, CreatedAt: created}))
		note("api")(im.Credential(ctx, store.ImportCredential{UUID: "cred-api", ServerID: srvID, Type: store.CredentialAPI, Name: "api",
			Key: "abcdefghijklmnopqrstuvwx", CreatedAt: created}))
		note("smtp-ip")(im.Credential(ctx, store.ImportCredential{UUID: "cred-ip", ServerID: srvID, Type: store.CredentialSMTPIP, Name: "office",
			Key: "198.51.100.0/24"}))
		epID := note("http")(im.HTTPEndpoint(ctx, store.ImportHTTPEndpoint{UUID: "http-uuid", ServerID: srvID, Name: "app",
			URL: "https://app.example.com/in", IncludeAttachments: true, Timeout: 5}))
		note("smtp")(im.SMTPEndpoint(ctx, store.ImportSMTPEndpoint{UUID: "smtp-uuid", ServerID: srvID, Name: "relay", Hostname: "mx.example.org"}))
		note("address")(im.AddressEndpoint(ctx, store.ImportAddressEndpoint{UUID: "addr-uuid", ServerID: srvID, Address: "ops@example.org"}))
		note("route")(im.Route(ctx, store.ImportRoute{UUID: "route-uuid", ServerID: srvID, DomainID: domID, Name: "Support", Token: "RtOk12",
			Mode: store.RouteModeEndpoint, SpamMode: store.SpamModeMark, EndpointType: store.EndpointHTTP, EndpointID: epID}))
		note("webhook")(im.Webhook(ctx, store.ImportWebhook{UUID: "hook-uuid", ServerID: srvID, Name: "hook", URL: "https://hooks.example.com",
			Enabled: true, Sign: true, Events: events}))
		note("track")(im.TrackDomain(ctx, store.ImportTrackDomain{UUID: "track-uuid", ServerID: srvID, DomainID: domID, Name: "click.example.com",
			SSLEnabled: true, TrackClicks: true, TrackLoads: true, ExcludedClickDomains: []string{"a.example", "b.example"}}))
		note("rule")(im.IPPoolRule(ctx, store.ImportIPPoolRule{UUID: "rule-uuid", ServerID: srvID, PoolID: poolID, To: []string{"gmail.com"}}))
		note("suppression")(im.Suppression(ctx, store.ImportSuppression{ServerID: srvID, Address: "Gone@Example.org", Reason: "hard fail",
			Timestamp: created, KeepUntil: created.Add(30 * 24 * time.Hour)}))
		return nil
	})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return got
}

func TestImportCreatesThenChangesNothingThenUpdates(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		events := []string{"MessageSent", "MessageBounced"}

		for kind, ch := range importAll(ctx, t, s, true, "Mail", events) {
			if ch != store.ImportCreated {
				t.Errorf("dry run: %s %s, want created", kind, ch)
			}
		}
		if orgs, err := s.Organizations(ctx); err != nil || len(orgs) != 0 {
			t.Fatalf("dry run kept %d organisations (%v)", len(orgs), err)
		}

		for kind, ch := range importAll(ctx, t, s, false, "Mail", events) {
			if ch != store.ImportCreated {
				t.Errorf("first import: %s %s, want created", kind, ch)
			}
		}
		for kind, ch := range importAll(ctx, t, s, false, "Mail", events) {
			if ch != store.ImportUnchanged {
				t.Errorf("second import: %s %s, want unchanged", kind, ch)
			}
		}
		importAll(ctx, t, s, false, "Mail renamed", []string{"MessageSent"})

		srv, err := s.ServerByToken(ctx, "ABCDEF")
		if err != nil {
			t.Fatalf("server by imported token: %v", err)
		}
		if srv.Name != "Mail renamed" || srv.Token != "abcdef" || srv.UUID != "srv-uuid" {
			t.Fatalf("server = %+v", srv)
		}
		c, err := s.CredentialByKey(ctx, store.CredentialAPI, "abcdefghijklmnopqrstuvwx")
		if err != nil || c.UUID != "cred-api" || c.ServerID != srv.ID || c.KeyHint != "abcd" {
			t.Fatalf("credential by imported key: %+v %v", c, err)
		}
		d, err := s.ServerDomain(ctx, srv.ID, "example.com")
		if err != nil || d.DKIMPrivateKey != "PEM" || d.DKIMIdentifierString != "QWERTY" || !d.Verified() || d.SPF.Status != "OK" {
			t.Fatalf("domain = %+v %v", d, err)
		}
		r, err := s.RouteByToken(ctx, "rtok12")
		if err != nil || r.Name != "support" || r.EndpointType != store.EndpointHTTP {
			t.Fatalf("route = %+v %v", r, err)
		}
		if sp, err := s.ServerSuppression(ctx, srv.ID, "gone@example.org"); err != nil || sp.Reason != "hard fail" {
			t.Fatalf("suppression = %+v %v", sp, err)
		}
	})
}

func TestImportReportsWhatChanged(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		importAll(ctx, t, s, false, "Mail", []string{"MessageSent", "MessageBounced"})
		got := importAll(ctx, t, s, false, "Mail renamed", []string{"MessageSent"})
		for kind, ch := range got {
			want := store.ImportUnchanged
			if kind == "server" || kind == "webhook" {
				want = store.ImportUpdated
			}
			if ch != want {
				t.Errorf("%s: %s, want %s", kind, ch, want)
			}
		}
	})
}

func TestImportConflictRollsBackEverything(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if _, err := s.CreateOrganization(ctx, "Local", "acme"); err != nil {
			t.Fatal(err)
		}
		err := s.Import(ctx, false, func(im *store.Import) error {
			if _, _, err := im.IPPool(ctx, store.ImportIPPool{UUID: "p", Name: "pool"}); err != nil {
				return err
			}
			_, _, err := im.Organization(ctx, store.ImportOrganization{UUID: "other", Name: "Acme", Permalink: "acme"})
			return err
		})
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("import over a local organisation of the same permalink: %v, want ErrConflict", err)
		}
		if pools, err := s.IPPools(ctx); err != nil || len(pools) != 0 {
			t.Fatalf("failed import kept %d pools (%v)", len(pools), err)
		}
	})
}

func TestImportUUIDIsStable(t *testing.T) {
	a, b := store.ImportUUID("domain", "x", "y"), store.ImportUUID("domain", "x", "y")
	if a != b || len(a) != 36 || a == store.ImportUUID("domain", "xy", "") {
		t.Fatalf("ImportUUID: %q %q", a, b)
	}
}

// BenchmarkImportSuppressions measures importing a 1,000-entry suppression
// list (one transaction) on each backend: "create" into an empty list,
// "unchanged" when every entry is already there (the cost of a re-run).
func BenchmarkImportSuppressions(b *testing.B) {
	const n = 1000
	for _, be := range storetest.Backends() {
		s := be.Open(b)
		ctx := context.Background()
		fx := storetest.NewFixture(b, s, "example.com", "")
		list := make([]store.ImportSuppression, n)
		for i := range list {
			list[i] = store.ImportSuppression{ServerID: fx.Server.ID, Address: fmt.Sprintf("user%d@example.org", i), Reason: "hard fail",
				Timestamp: time.Unix(1700000000, 0), KeepUntil: time.Unix(1800000000, 0)}
		}
		run := func(b *testing.B, want store.ImportChange) {
			err := s.Import(ctx, false, func(im *store.Import) error {
				for _, sp := range list {
					if _, ch, err := im.Suppression(ctx, sp); err != nil || ch != want {
						return fmt.Errorf("%s: %s, %v", sp.Address, ch, err)
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.Run(be.Name+"/create", func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				if _, err := s.PruneSuppressions(ctx, time.Unix(1900000000, 0)); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				run(b, store.ImportCreated)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/entry")
		})
		b.Run(be.Name+"/unchanged", func(b *testing.B) {
			for b.Loop() {
				run(b, store.ImportUnchanged)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/entry")
		})
	}
}
