package outbound

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/untrusted"
	"github.com/postalgo/postal/daemon/webhook"
)

// DeliveryEvent maps a delivery status to its webhook event ("" for none);
// incoming mail fires the same events as outgoing.
func DeliveryEvent(status string) string {
	switch status {
	case store.StatusSent:
		return webhook.EventMessageSent
	case store.StatusSoftFail:
		return webhook.EventMessageDelayed
	case store.StatusHardFail:
		return webhook.EventMessageDeliveryFailed
	case store.StatusHeld:
		return webhook.EventMessageHeld
	}
	return ""
}

// ServerPayload returns s as Postal describes a server in webhooks.
func ServerPayload(s *store.Server) webhook.Server {
	return webhook.Server{UUID: s.UUID, Name: s.Name, Permalink: s.Permalink, Organization: s.OrganizationPermalink}
}

// DeliveryPayload is the payload of d's event; output is capped as the
// store caps it, so the webhook quotes what was recorded.
func DeliveryPayload(m *store.Message, d *store.NewDelivery, now time.Time) webhook.Delivery {
	ssl := d.SentWithSSL
	p := webhook.Delivery{Message: m.WebhookPayload(), Status: d.Status, Details: d.Details,
		Output: untrusted.Lines(d.Output, 512), SentWithSSL: &ssl, Timestamp: webhook.Seconds(now)}
	if d.Time != 0 {
		t := d.Time
		p.Time = &t
	}
	return p
}

// Event is one webhook event of a server.
type Event struct {
	ServerID int64
	// MessageID is the message the event is about (0: a server event).
	MessageID int64
	// Name is the event's name (webhook.EventMessageSent, ...).
	Name string
	// Payload is encoded as the request's JSON payload.
	Payload any
}

// Events turns events into webhook requests for the subscribed, enabled
// webhooks of their server; the requests travel as outcome effects and are
// stored with the outcome. It is safe for concurrent use.
type Events struct {
	store WebhookStore
	hooks *ttlCache[int64, []*store.Webhook]
	log   *slog.Logger
}

// NewEvents returns an Events that caches each server's webhooks for ttl.
func NewEvents(s WebhookStore, ttl time.Duration, log *slog.Logger) *Events {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Events{store: s, hooks: newTTLCache[int64, []*store.Webhook](ttl, 4096), log: log}
}

// Requests returns one request per subscribed, enabled webhook and event.
// Failures are logged and the event dropped: a lost event does not undo a
// delivery.
func (e *Events) Requests(ctx context.Context, now time.Time, evs ...Event) []store.NewWebhookRequest {
	var reqs []store.NewWebhookRequest
	for _, ev := range evs {
		hooks, ok := e.hooks.get(ev.ServerID, now)
		if !ok {
			var err error
			if hooks, err = e.store.Webhooks(ctx, ev.ServerID); err != nil {
				e.log.Error("loading webhooks failed; event dropped", "err", err, "server", ev.ServerID, "event", ev.Name)
				continue
			}
			e.hooks.put(ev.ServerID, hooks, now)
		}
		var body []byte
		for _, h := range hooks {
			if !webhook.Subscribed(h.Enabled, h.AllEvents, h.Events, ev.Name) {
				continue
			}
			if body == nil {
				var err error
				if body, err = json.Marshal(ev.Payload); err != nil {
					e.log.Error("encoding webhook payload failed", "err", err, "event", ev.Name)
					break
				}
			}
			reqs = append(reqs, store.NewWebhookRequest{ServerID: ev.ServerID, WebhookID: h.ID, MessageID: ev.MessageID, URL: h.URL,
				Event: ev.Name, Payload: string(body)})
		}
	}
	return reqs
}
