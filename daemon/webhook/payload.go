// Package webhook is what a webhook is on the wire, compatibly with Postal:
// event names, the payload of every event, the envelope a receiver gets, the
// three signature headers, one HTTP attempt and the retry schedule.
//
// Contract: values in, values out. The package imports neither store, queue
// nor a role. Body returns the exact bytes that are signed and sent, with
// the keys in Postal's order ({event, timestamp, payload, uuid}); the same
// request (uuid, enqueue time, payload) always gives the same bytes, so a
// retry is byte-identical to the first attempt. Client.Send makes exactly one
// POST: it never follows a redirect, it gives up after Timeout (5 s, as
// Postal), only a 2xx answer is a success, and every failure is classified
// (see Result). Response excerpts are valid UTF-8 without NUL bytes and at
// most ExcerptMax bytes, cut on a character boundary.
package webhook

import "time"

// Event names, as Postal names them.
const (
	EventMessageSent           = "MessageSent"
	EventMessageDelayed        = "MessageDelayed"
	EventMessageDeliveryFailed = "MessageDeliveryFailed"
	EventMessageHeld           = "MessageHeld"
	EventMessageBounced        = "MessageBounced"
	EventMessageLinkClicked    = "MessageLinkClicked"
	EventMessageLoaded         = "MessageLoaded"
	EventDomainDNSError        = "DomainDNSError"
	EventSendLimitApproaching  = "SendLimitApproaching"
	EventSendLimitExceeded     = "SendLimitExceeded"
)

// Events returns every event name in Postal's order: the eight a webhook may
// select, then the two send-limit events that only all-events webhooks get.
func Events() []string {
	return []string{EventMessageSent, EventMessageDelayed, EventMessageDeliveryFailed, EventMessageHeld,
		EventMessageBounced, EventMessageLinkClicked, EventMessageLoaded, EventDomainDNSError,
		EventSendLimitApproaching, EventSendLimitExceeded}
}

// Known reports whether name is one of Events.
func Known(name string) bool {
	for _, e := range Events() {
		if e == name {
			return true
		}
	}
	return false
}

// Message is Postal's message object in payloads (Message#webhook_hash),
// keys in Postal's order.
type Message struct {
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

// Delivery is the payload of MessageSent, MessageDelayed,
// MessageDeliveryFailed and MessageHeld. SentWithSSL is null for rows
// created without a send attempt (Postal's Held and some HardFail rows).
type Delivery struct {
	Message     Message  `json:"message"`
	Status      string   `json:"status"`
	Details     string   `json:"details"`
	Output      string   `json:"output"`
	SentWithSSL *bool    `json:"sent_with_ssl"`
	Timestamp   float64  `json:"timestamp"`
	Time        *float64 `json:"time"`
}

// Bounced is the payload of MessageBounced.
type Bounced struct {
	OriginalMessage Message `json:"original_message"`
	Bounce          Message `json:"bounce"`
}

// LinkClicked is the payload of MessageLinkClicked: URL is the original
// link, Token the link's token.
type LinkClicked struct {
	Message   Message `json:"message"`
	URL       string  `json:"url"`
	Token     string  `json:"token"`
	IPAddress string  `json:"ip_address"`
	UserAgent string  `json:"user_agent"`
}

// Loaded is the payload of MessageLoaded (the tracking pixel was fetched).
type Loaded struct {
	Message   Message `json:"message"`
	IPAddress string  `json:"ip_address"`
	UserAgent string  `json:"user_agent"`
}

// Server is Postal's server object in DomainDNSError and the send-limit
// events; Organization is the organisation's permalink.
type Server struct {
	UUID         string `json:"uuid"`
	Name         string `json:"name"`
	Permalink    string `json:"permalink"`
	Organization string `json:"organization"`
}

// DomainDNSError is the payload of DomainDNSError: Domain is the domain's
// name, UUID its uuid; statuses are "OK", "Missing" or "Invalid" and an
// error is null when its check passed.
type DomainDNSError struct {
	Server           Server  `json:"server"`
	Domain           string  `json:"domain"`
	UUID             string  `json:"uuid"`
	DNSCheckedAt     float64 `json:"dns_checked_at"`
	SPFStatus        string  `json:"spf_status"`
	SPFError         *string `json:"spf_error"`
	DKIMStatus       string  `json:"dkim_status"`
	DKIMError        *string `json:"dkim_error"`
	MXStatus         string  `json:"mx_status"`
	MXError          *string `json:"mx_error"`
	ReturnPathStatus string  `json:"return_path_status"`
	ReturnPathError  *string `json:"return_path_error"`
}

// SendLimit is the payload of SendLimitApproaching and SendLimitExceeded:
// the server's outgoing volume over the last 60 minutes and its limit.
type SendLimit struct {
	Server Server `json:"server"`
	Volume int64  `json:"volume"`
	Limit  int64  `json:"limit"`
}

// Seconds is t as Postal writes times in payloads: float seconds since the
// epoch, to the microsecond. The zero time is 0.
func Seconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMicro()) / 1e6
}

// OptionalString is nil for "" and a pointer to s otherwise: the form of
// Postal's nullable strings (tag, DNS errors).
func OptionalString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Subscribed reports whether a webhook with these settings gets event:
// enabled, and subscribed to all events or to event by name. The
// send-limit events reach all-events webhooks only, as in Postal.
func Subscribed(enabled, allEvents bool, events []string, event string) bool {
	if !enabled {
		return false
	}
	if allEvents {
		return true
	}
	for _, e := range events {
		if e == event {
			return true
		}
	}
	return false
}
