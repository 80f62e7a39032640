package dnscheck_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/dnscheck"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/redisconn/redistest"
	"github.com/postalgo/postal/daemon/resolver/dnstest"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
	"github.com/postalgo/postal/daemon/webhook"
)

// TestDNSErrorFiresToSubscribedWebhooks: a domain whose check fails fires
// DomainDNSError, with Postal's payload, to enabled webhooks subscribed to
// it (or to all events) and to no other.
func TestDNSErrorFiresToSubscribedWebhooks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		client, keys := redistest.New(t)
		q := queue.New(queue.Options{Client: client, Keys: keys})
		if err := q.Init(ctx); err != nil {
			t.Fatal(err)
		}
		fx := storetest.NewFixture(t, s, "broken.test", "")
		mk := func(name string, nw store.NewWebhook) *store.Webhook {
			nw.Name, nw.URL = name, "https://"+name+".test/"
			h, err := s.CreateWebhook(ctx, fx.Server.ID, nw)
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
		dnsHook := mk("dns", store.NewWebhook{Events: []string{webhook.EventDomainDNSError}, Enabled: true})
		allHook := mk("all", store.NewWebhook{AllEvents: true, Enabled: true})
		mk("sent", store.NewWebhook{Events: []string{webhook.EventMessageSent}, Enabled: true})
		mk("off", store.NewWebhook{AllEvents: true, Enabled: false})

		srv := dnstest.NewServer(t) // publishes nothing: every check fails
		rs, err := dnscheck.NewResolvers(dnscheck.Options{DNS: testDNS(srv.Addr()), UseLocalNS: true})
		if err != nil {
			t.Fatal(err)
		}
		now := time.UnixMicro(time.Now().UnixMicro())
		if err := dnscheck.CheckAll(ctx, s, rs, testDNS(), now, dnscheck.DNSErrorWebhooks(s, q, nil)); err != nil {
			t.Fatal(err)
		}
		st, err := q.Inspect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ws, _ := st.Stream(queue.Webhooks); ws.Length != 2 {
			t.Errorf("webhooks stream holds %d entries, want 2", ws.Length)
		}
		ids := []int64{}
		for id := int64(1); id <= 10; id++ {
			ids = append(ids, id)
		}
		reqs, err := s.WebhookRequests(ctx, ids)
		if err != nil || len(reqs) != 2 {
			t.Fatalf("requests = %v, %v", reqs, err)
		}
		if reqs[0].WebhookID != dnsHook.ID || reqs[1].WebhookID != allHook.ID {
			t.Errorf("requests for webhooks %d and %d, want %d and %d", reqs[0].WebhookID, reqs[1].WebhookID, dnsHook.ID, allHook.ID)
		}
		var p webhook.DomainDNSError
		if err := json.Unmarshal([]byte(reqs[0].Payload), &p); err != nil {
			t.Fatal(err)
		}
		if reqs[0].Event != webhook.EventDomainDNSError || p.Domain != "broken.test" || p.UUID != fx.Domain.UUID ||
			p.Server.Permalink != "mail" || p.Server.Organization != "acme" || p.Server.UUID != fx.Server.UUID ||
			p.SPFStatus != "Missing" || p.SPFError == nil || p.DNSCheckedAt != webhook.Seconds(now) {
			t.Errorf("payload = %s", reqs[0].Payload)
		}
	})
}
