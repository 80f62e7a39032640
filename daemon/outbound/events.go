package outbound

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/postalgo/postal/daemon/store"
)

// Webhook event names, as Postal names them.
const (
	EventMessageSent           = "MessageSent"
	EventMessageDelayed        = "MessageDelayed"
	EventMessageDeliveryFailed = "MessageDeliveryFailed"
	EventMessageHeld           = "MessageHeld"
	EventMessageBounced        = "MessageBounced"
	EventSendLimitApproaching  = "SendLimitApproaching"
	EventSendLimitExceeded     = "SendLimitExceeded"
)

// ServerPayload is Postal's server object in webhook payloads.
type ServerPayload struct {
	UUID         string `json:"uuid"`
	Name         string `json:"name"`
	Permalink    string `json:"permalink"`
	Organization string `json:"organization"`
}

// NewServerPayload returns s as Postal describes a server in webhooks.
func NewServerPayload(s *store.Server) ServerPayload {
	return ServerPayload{UUID: s.UUID, Name: s.Name, Permalink: s.Permalink, Organization: s.OrganizationPermalink}
}

// SendLimitPayload is the payload of SendLimitApproaching and
// SendLimitExceeded: the server's outgoing volume over the last 60 minutes
// and its send limit.
type SendLimitPayload struct {
	Server ServerPayload `json:"server"`
	Volume int64         `json:"volume"`
	Limit  int64         `json:"limit"`
}

// deliveryEvent maps a delivery status to its webhook event ("" for none).
func deliveryEvent(status string) string {
	switch status {
	case store.StatusSent:
		return EventMessageSent
	case store.StatusSoftFail:
		return EventMessageDelayed
	case store.StatusHardFail:
		return EventMessageDeliveryFailed
	case store.StatusHeld:
		return EventMessageHeld
	}
	return ""
}

// MessagePayload is Postal's message object in webhook payloads.
type MessagePayload struct {
	ID         int64   `json:"id"`
	Token      string  `json:"token"`
	Direction  string  `json:"direction"`
	MessageID  string  `json:"message_id"`
	To         string  `json:"to"`
	From       string  `json:"from"`
	Subject    string  `json:"subject"`
	Timestamp  float64 `json:"timestamp"`
	SpamStatus string  `json:"spam_status"`
	Tag        *string `json:"tag"`
}

// DeliveryPayload is the payload of MessageSent, MessageDelayed,
// MessageDeliveryFailed and MessageHeld.
type DeliveryPayload struct {
	Message     MessagePayload `json:"message"`
	Status      string         `json:"status"`
	Details     string         `json:"details"`
	Output      string         `json:"output"`
	SentWithSSL bool           `json:"sent_with_ssl"`
	Timestamp   float64        `json:"timestamp"`
	Time        *float64       `json:"time"`
}

// BouncedPayload is the payload of MessageBounced.
type BouncedPayload struct {
	OriginalMessage MessagePayload `json:"original_message"`
	Bounce          MessagePayload `json:"bounce"`
}

// NewMessagePayload returns m as Postal describes a message in webhooks.
// Messages are not inspected for spam yet, so spam_status is "NotChecked".
func NewMessagePayload(m *store.Message) MessagePayload {
	p := MessagePayload{ID: m.ID, Token: m.Token, Direction: m.Scope, MessageID: m.MessageID, To: m.RcptTo,
		From: m.MailFrom, Subject: m.Subject, Timestamp: unixSeconds(m.Timestamp), SpamStatus: "NotChecked"}
	if m.Tag != "" {
		tag := m.Tag
		p.Tag = &tag
	}
	return p
}

func newDeliveryPayload(m *store.Message, d *store.NewDelivery, now time.Time) DeliveryPayload {
	p := DeliveryPayload{Message: NewMessagePayload(m), Status: d.Status, Details: d.Details,
		Output: truncateUTF8(d.Output, 512), SentWithSSL: d.SentWithSSL, Timestamp: unixSeconds(now)}
	if d.Time != 0 {
		t := d.Time
		p.Time = &t
	}
	return p
}

func unixSeconds(t time.Time) float64 {
	return float64(t.UnixMicro()) / 1e6
}

// truncateUTF8 cuts s to at most n bytes without splitting a character and
// replaces invalid bytes, as Postal scrubs output.
func truncateUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Event is one webhook event of a server.
type Event struct {
	ServerID int64
	// Name is the event's name (EventMessageSent, ...).
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
			if !h.Enabled || !subscribed(h, ev.Name) {
				continue
			}
			if body == nil {
				var err error
				if body, err = json.Marshal(ev.Payload); err != nil {
					e.log.Error("encoding webhook payload failed", "err", err, "event", ev.Name)
					break
				}
			}
			reqs = append(reqs, store.NewWebhookRequest{ServerID: ev.ServerID, WebhookID: h.ID, URL: h.URL, Event: ev.Name, Payload: string(body)})
		}
	}
	return reqs
}

// subscribed reports whether h wants event.
func subscribed(h *store.Webhook, event string) bool {
	if h.AllEvents {
		return true
	}
	for _, e := range h.Events {
		if e == event {
			return true
		}
	}
	return false
}
