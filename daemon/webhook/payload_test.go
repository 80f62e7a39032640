package webhook_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/webhook"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func sampleMessage() webhook.Message {
	return webhook.Message{ID: 12345, Token: "AbCdEfGh12345678", Direction: "outgoing", MessageID: "abc@example.com",
		To: "rcpt@example.net", From: "sender@example.com", Subject: "Hello", Timestamp: 1700000000.123456,
		SpamStatus: "NotChecked", Tag: webhook.OptionalString("welcome")}
}

// samples holds one payload per event, as the golden files record them.
func samples() map[string]any {
	yes, elapsed := true, 0.41
	server := webhook.Server{UUID: "9b3e6c1c-3f6a-4d2e-9d1f-0a1b2c3d4e5f", Name: "Mail", Permalink: "mail", Organization: "acme"}
	delivery := func(status string) webhook.Delivery {
		d := webhook.Delivery{Message: sampleMessage(), Status: status, Details: "Message for rcpt@example.net accepted by mx.example.net",
			Output: "250 2.0.0 OK", SentWithSSL: &yes, Timestamp: 1700000001.5, Time: &elapsed}
		if status == "Held" {
			d.SentWithSSL, d.Time, d.Output = nil, nil, ""
			d.Details = "Credential is configured to hold all messages."
		}
		return d
	}
	bounce := sampleMessage()
	bounce.ID, bounce.Direction, bounce.Tag, bounce.SpamStatus = 12346, "incoming", nil, "NotSpam"
	return map[string]any{
		webhook.EventMessageSent:           delivery("Sent"),
		webhook.EventMessageDelayed:        delivery("SoftFail"),
		webhook.EventMessageDeliveryFailed: delivery("HardFail"),
		webhook.EventMessageHeld:           delivery("Held"),
		webhook.EventMessageBounced:        webhook.Bounced{OriginalMessage: sampleMessage(), Bounce: bounce},
		webhook.EventMessageLinkClicked: webhook.LinkClicked{Message: sampleMessage(), URL: "https://example.com/offer?a=1",
			Token: "Lk9Qz2Xc4Vb6Nm8A", IPAddress: "192.0.2.10", UserAgent: "Mozilla/5.0"},
		webhook.EventMessageLoaded: webhook.Loaded{Message: sampleMessage(), IPAddress: "192.0.2.10", UserAgent: "Mozilla/5.0"},
		webhook.EventDomainDNSError: webhook.DomainDNSError{Server: server, Domain: "example.com",
			UUID: "0f0e0d0c-0b0a-4908-8706-050403020100", DNSCheckedAt: 1700003600.25,
			SPFStatus: "Invalid", SPFError: webhook.OptionalString("An SPF record exists but it doesn't include spf.postal.example.com"),
			DKIMStatus: "OK", MXStatus: "Missing", MXError: webhook.OptionalString("There are no MX records for example.com"),
			ReturnPathStatus: "OK"},
		webhook.EventSendLimitApproaching: webhook.SendLimit{Server: server, Volume: 91, Limit: 100},
		webhook.EventSendLimitExceeded:    webhook.SendLimit{Server: server, Volume: 100, Limit: 100},
	}
}

// TestPayloadsMatchGolden pins the wire form of every event: the envelope
// with Postal's key order around each payload.
func TestPayloadsMatchGolden(t *testing.T) {
	s := samples()
	for _, ev := range webhook.Events() {
		t.Run(ev, func(t *testing.T) {
			p, ok := s[ev]
			if !ok {
				t.Fatalf("no sample payload for %s", ev)
			}
			payload, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			body, err := webhook.Body(webhook.Request{Event: ev, UUID: "5c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5",
				CreatedAt: time.UnixMicro(1700000002_000001), Payload: payload})
			if err != nil {
				t.Fatal(err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, body, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			path := filepath.Join("testdata", ev+".golden.json")
			if *update {
				if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("%s differs from %s:\n%s", ev, path, pretty.Bytes())
			}
		})
	}
}

func TestBodyKeepsEnvelopeOrderAndRefusesBadPayloads(t *testing.T) {
	body, err := webhook.Body(webhook.Request{Event: "MessageSent", UUID: "u-1", CreatedAt: time.UnixMicro(1_500_000), Payload: []byte(` {"b":1,"a":2} `)})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"event":"MessageSent","timestamp":1.5,"payload":{"b":1,"a":2},"uuid":"u-1"}`; string(body) != want {
		t.Errorf("body = %s, want %s", body, want)
	}
	for _, bad := range []string{"", "[]", "{", `"x"`, "null"} {
		if _, err := webhook.Body(webhook.Request{Event: "MessageSent", Payload: []byte(bad)}); err == nil {
			t.Errorf("payload %q accepted", bad)
		}
	}
	if _, err := webhook.Body(webhook.Request{Payload: append([]byte(`{"a":"`), append(bytes.Repeat([]byte("x"), webhook.MaxPayload), '"', '}')...)}); err == nil {
		t.Error("oversized payload accepted")
	}
}

func TestKnownEvents(t *testing.T) {
	if len(webhook.Events()) != 10 || !webhook.Known("DomainDNSError") || webhook.Known("messagesent") {
		t.Errorf("Events/Known disagree with Postal's list: %v", webhook.Events())
	}
}

func TestExampleCoversEveryEvent(t *testing.T) {
	for _, ev := range webhook.Events() {
		p, ok := webhook.Example(ev, webhook.Server{Permalink: "mail"}, time.Unix(1, 0))
		if !ok {
			t.Errorf("no example for %s", ev)
			continue
		}
		if _, err := json.Marshal(p); err != nil {
			t.Errorf("%s: %v", ev, err)
		}
	}
	if _, ok := webhook.Example("Nope", webhook.Server{}, time.Time{}); ok {
		t.Error("example for an unknown event")
	}
}
