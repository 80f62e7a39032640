package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func TestTracking(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		td, err := s.CreateTrackDomain(ctx, fx.Server.ID, store.NewTrackDomain{DomainID: fx.Domain.ID, Name: "click", TrackClicks: true})
		if err != nil {
			t.Fatal(err)
		}
		// Neither DNS OK nor verified: not active.
		if _, err := s.ActiveTrackDomain(ctx, fx.Server.ID, fx.Domain.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unchecked track domain active: %v", err)
		}
		if err := s.SetTrackDomainVerified(ctx, fx.Server.ID, td.UUID, true); err != nil {
			t.Fatal(err)
		}
		if got, err := s.ActiveTrackDomain(ctx, fx.Server.ID, fx.Domain.ID); err != nil || got.ID != td.ID || !got.Verified {
			t.Fatalf("verified track domain = %+v, %v", got, err)
		}
		if err := s.SaveTrackDomainDNSCheck(ctx, td.ID, store.DNSCheck{Status: "OK"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := s.SetTrackDomainVerified(ctx, fx.Server.ID, td.UUID, false); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ActiveTrackDomain(ctx, fx.Server.ID, fx.Domain.ID); err != nil {
			t.Fatalf("DNS OK track domain not active: %v", err)
		}

		acc, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("x"), Messages: []store.NewMessage{
			{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "a@dest.test", MailFrom: "f@example.com", DomainID: fx.Domain.ID}}}})
		if err != nil {
			t.Fatal(err)
		}
		msgID, msgToken := acc[0][0].MessageID, acc[0][0].Token

		// Links are idempotent per message and URL.
		first, err := s.EnsureLinks(ctx, msgID, []string{"https://a.test/1", "https://a.test/2"}, 2, 1)
		if err != nil || len(first) != 2 || len(first["https://a.test/1"]) != 16 {
			t.Fatalf("links = %v, %v", first, err)
		}
		again, err := s.EnsureLinks(ctx, msgID, []string{"https://a.test/2", "https://a.test/1"}, 2, 1)
		if err != nil || again["https://a.test/1"] != first["https://a.test/1"] || again["https://a.test/2"] != first["https://a.test/2"] {
			t.Fatalf("second EnsureLinks = %v, want %v (%v)", again, first, err)
		}
		if _, err := s.EnsureLinks(ctx, 1<<40, nil, 0, 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("links of an unknown message: %v", err)
		}

		// Hooks: one subscribed to clicks only, one disabled.
		if _, err := s.CreateWebhook(ctx, fx.Server.ID, store.NewWebhook{Name: "c", URL: "https://hooks.test/c", Events: []string{"MessageLinkClicked"}, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		events := func(ev store.TrackingEvent) []store.NewWebhookRequest {
			var out []store.NewWebhookRequest
			for _, h := range ev.Webhooks {
				name := "MessageLoaded"
				if ev.Link != nil {
					name = "MessageLinkClicked"
				}
				if h.Enabled && (h.AllEvents || len(h.Events) == 1 && h.Events[0] == name) {
					out = append(out, store.NewWebhookRequest{ServerID: ev.Message.ServerID, WebhookID: h.ID, URL: h.URL, Event: name, Payload: "{}"})
				}
			}
			return out
		}
		t1 := time.UnixMicro(time.Now().UnixMicro())
		hit := store.TrackingHit{IP: "192.0.2.1", UserAgent: "UA\x00one", At: t1}
		res, err := s.RecordLoad(ctx, fx.Server.Token, msgToken, hit, events)
		if err != nil || len(res.WebhookIDs) != 0 {
			t.Fatalf("load = %+v, %v", res, err)
		}
		hit.At = t1.Add(time.Minute)
		if _, err := s.RecordLoad(ctx, fx.Server.Token, msgToken, hit, events); err != nil {
			t.Fatal(err)
		}
		res, err = s.RecordClick(ctx, fx.Server.Token, first["https://a.test/2"], hit, events)
		if err != nil || res.Link == nil || res.Link.URL != "https://a.test/2" || len(res.WebhookIDs) != 1 {
			t.Fatalf("click = %+v, %v", res, err)
		}
		reqs, err := s.WebhookRequests(ctx, res.WebhookIDs)
		if err != nil || len(reqs) != 1 || reqs[0].Event != "MessageLinkClicked" {
			t.Fatalf("webhook requests = %+v, %v", reqs, err)
		}
		if _, err := s.RecordClick(ctx, fx.Server.Token, "nosuchtoken00000", hit, events); !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnknownServer) {
			t.Fatalf("unknown link: %v", err)
		}
		if _, err := s.RecordLoad(ctx, "zzzzzz", msgToken, hit, events); !errors.Is(err, store.ErrUnknownServer) {
			t.Fatalf("unknown server: %v", err)
		}
		mt, err := s.TrackingOf(ctx, msgID)
		if err != nil {
			t.Fatal(err)
		}
		if !mt.Parsed || mt.TrackedLinks != 2 || mt.TrackedImages != 1 || !mt.Loaded.Equal(t1) || !mt.Clicked.Equal(hit.At) {
			t.Fatalf("tracking = %+v (first load %v)", mt, t1)
		}
		if len(mt.Loads) != 2 || len(mt.Clicks) != 1 || mt.Clicks[0].URL != "https://a.test/2" || mt.Loads[0].UserAgent != "UA\uFFFDone" {
			t.Fatalf("activity = %+v", mt)
		}
	})
}
