package webhook

import "time"

// Example returns a plausible payload of event for a test request to a
// receiver (postalctl webhook test), about server srv, stamped now; false
// for an unknown event.
func Example(event string, srv Server, now time.Time) (any, bool) {
	ts := Seconds(now)
	msg := Message{ID: 1, Token: "TestTestTestTest", Direction: "outgoing", MessageID: "test-message@" + exampleHost(srv),
		To: "recipient@example.com", From: "sender@example.com", Subject: "Test webhook from Postal", Timestamp: ts,
		SpamStatus: "NotChecked"}
	yes, secs := true, 0.25
	delivery := func(status, details string) Delivery {
		return Delivery{Message: msg, Status: status, Details: details, Output: "250 2.0.0 OK", SentWithSSL: &yes, Timestamp: ts, Time: &secs}
	}
	switch event {
	case EventMessageSent:
		return delivery("Sent", "Message for recipient@example.com accepted by mx.example.com"), true
	case EventMessageDelayed:
		return delivery("SoftFail", "Temporary failure from mx.example.com; will retry"), true
	case EventMessageDeliveryFailed:
		return delivery("HardFail", "Permanent failure from mx.example.com"), true
	case EventMessageHeld:
		d := delivery("Held", "Credential is configured to hold all messages.")
		d.Output, d.SentWithSSL, d.Time = "", nil, nil
		return d, true
	case EventMessageBounced:
		bounce := msg
		bounce.ID, bounce.Direction, bounce.SpamStatus, bounce.Subject = 2, "incoming", "NotSpam", "Mail delivery failed"
		return Bounced{OriginalMessage: msg, Bounce: bounce}, true
	case EventMessageLinkClicked:
		return LinkClicked{Message: msg, URL: "https://example.com/", Token: "TestLinkTokenAbc", IPAddress: "192.0.2.1",
			UserAgent: "Mozilla/5.0"}, true
	case EventMessageLoaded:
		return Loaded{Message: msg, IPAddress: "192.0.2.1", UserAgent: "Mozilla/5.0"}, true
	case EventDomainDNSError:
		return DomainDNSError{Server: srv, Domain: "example.com", UUID: "00000000-0000-4000-8000-000000000000", DNSCheckedAt: ts,
			SPFStatus: "Missing", SPFError: OptionalString("No SPF record exists for this domain"), DKIMStatus: "OK",
			MXStatus: "OK", ReturnPathStatus: "OK"}, true
	case EventSendLimitApproaching:
		return SendLimit{Server: srv, Volume: 90, Limit: 100}, true
	case EventSendLimitExceeded:
		return SendLimit{Server: srv, Volume: 100, Limit: 100}, true
	}
	return nil, false
}

func exampleHost(srv Server) string {
	if srv.Permalink == "" {
		return "example.com"
	}
	return srv.Permalink + ".example.com"
}
