package inbound

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/dsn"
	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
	"github.com/postalgo/postal/daemon/webhook"
)

type env struct {
	t   *testing.T
	s   *store.Store
	fx  storetest.Fixture
	now time.Time
}

// store stores and queues one message and returns its row claimed by "w".
func (e *env) store(raw []byte, nm store.NewMessage) *store.QueuedMessage {
	e.t.Helper()
	ctx := context.Background()
	nm.ServerID, nm.Queue = e.fx.Server.ID, true
	acc, err := e.s.InsertSubmissions(ctx, []store.Submission{{Raw: raw, Messages: []store.NewMessage{nm}}})
	if err != nil {
		e.t.Fatal(err)
	}
	now := time.Now()
	rows, err := e.s.ClaimQueued(ctx, []int64{acc[0][0].QueuedID}, "w", now.Add(time.Second), now.Add(time.Hour))
	if err != nil || len(rows) != 1 {
		e.t.Fatalf("claim: %v %v", rows, err)
	}
	return rows[0]
}

func (e *env) message(id int64) *store.Message {
	e.t.Helper()
	m, err := e.s.Message(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func TestBounceHandler(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		e := &env{t: t, s: s, fx: storetest.NewFixture(t, s, "example.com", ""), now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
		if _, err := s.CreateWebhook(ctx, e.fx.Server.ID, store.NewWebhook{Name: "b", URL: "https://hooks.test/b",
			Events: []string{webhook.EventMessageBounced}, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		h, err := NewBounceHandler(BounceOptions{Store: s, Now: func() time.Time { return e.now }})
		if err != nil {
			t.Fatal(err)
		}
		// An original message, delivered; the remote MTA later returns a
		// DSN quoting the headers it received.
		origRow := e.store([]byte("Subject: hi\r\n\r\nhello\r\n"), store.NewMessage{Scope: store.ScopeOutgoing,
			RcptTo: "ok@dest.test", MailFrom: "sender@example.com", DomainID: e.fx.Domain.ID, QueueDomain: "dest.test"})
		if _, err := s.RecordOutcomes(ctx, []store.Outcome{store.Sent(origRow, store.NewDelivery{})}); err != nil {
			t.Fatal(err)
		}
		orig := e.message(origRow.MessageID)
		remoteDSN, err := dsn.Build(dsn.Params{ReportingMTA: "mx1.dest.test", From: "MAILER-DAEMON@dest.test",
			To: e.fx.Server.Token + "@rp.postal.test", Date: e.now, MessageID: "dsn1@dest.test",
			Recipients: []dsn.Recipient{{Address: "ok@dest.test", Action: dsn.ActionFailed, Status: "5.2.2",
				DiagnosticCode: "smtp; 552 5.2.2 Mailbox full"}},
			OriginalHeaders: []byte("X-Postal-MsgID: " + orig.Token + "\r\nSubject: hi\r\n\r\n")})
		if err != nil {
			t.Fatal(err)
		}
		rp := e.fx.Server.Token + "@rp.postal.test"
		bounceRow := e.store(remoteDSN, store.NewMessage{Scope: store.ScopeIncoming, RcptTo: rp, Bounce: true, QueueDomain: "rp.postal.test"})
		plainRow := e.store([]byte("Subject: hello\r\n\r\nhi\r\n"), store.NewMessage{Scope: store.ScopeIncoming,
			RcptTo: "someone@example.com", MailFrom: "x@far.test", QueueDomain: "example.com"})
		lostRow := e.store([]byte("Subject: no idea\r\n\r\nnothing to link\r\n"), store.NewMessage{Scope: store.ScopeIncoming,
			RcptTo: rp, Bounce: true, QueueDomain: "rp.postal.test"})

		outs := h.Handle(ctx, []*store.QueuedMessage{bounceRow, plainRow, lostRow})
		// Handling writes nothing: the original is untouched until the
		// outcomes commit.
		if m := e.message(orig.ID); m.Status != store.StatusSent {
			t.Fatalf("original changed before the commit: %s", m.Status)
		}
		res, err := s.CommitOutcomes(ctx, outs)
		if err != nil || !res.Applied[0] || !res.Applied[1] || !res.Applied[2] {
			t.Fatalf("commit = %+v, %v", res, err)
		}

		t.Run("a DSN marks its original bounced", func(t *testing.T) {
			o := e.message(orig.ID)
			if o.Status != store.StatusBounced {
				t.Errorf("original status = %s, want Bounced", o.Status)
			}
			ds, _ := s.Deliveries(ctx, orig.ID)
			last := ds[len(ds)-1]
			if last.Status != store.StatusBounced || !strings.Contains(last.Output, "552 5.2.2 Mailbox full") ||
				!strings.Contains(last.Details, "We've received a bounce message for this e-mail.") {
				t.Errorf("last delivery = %+v", last)
			}
			b := e.message(bounceRow.MessageID)
			if b.Status != store.StatusProcessed || b.BounceForID != orig.ID || b.DomainID != orig.DomainID {
				t.Errorf("bounce = status %s for %d domain %d", b.Status, b.BounceForID, b.DomainID)
			}
			if len(res.Webhooks) != 1 {
				t.Fatalf("webhook requests to dispatch = %v, want 1", res.Webhooks)
			}
			reqs, err := s.WebhookRequests(ctx, res.Webhooks)
			if err != nil || len(reqs) != 1 || reqs[0].Event != webhook.EventMessageBounced {
				t.Fatalf("requests %+v, %v", reqs, err)
			}
			var p webhook.Bounced
			if err := json.Unmarshal([]byte(reqs[0].Payload), &p); err != nil {
				t.Fatal(err)
			}
			if p.OriginalMessage.ID != orig.ID || p.Bounce.ID != b.ID || p.Bounce.Direction != "incoming" {
				t.Errorf("payload = %+v", p)
			}
		})
		t.Run("other incoming mail is left for routing", func(t *testing.T) {
			o := outs[1]
			if !o.Retries() || !o.RetryAfter().Equal(e.now.Add(time.Hour)) || o.Status() != "" || o.Delivery() != nil ||
				o.Details() != "waiting for inbound routing" {
				t.Errorf("outcome = %+v", o)
			}
			if m := e.message(plainRow.MessageID); m.Status != store.StatusPending {
				t.Errorf("message touched: %s", m.Status)
			}
		})
		t.Run("an unlinkable bounce hard-fails", func(t *testing.T) {
			if m := e.message(lostRow.MessageID); m.Status != store.StatusHardFail {
				t.Errorf("status = %s", m.Status)
			}
		})
	})
}
