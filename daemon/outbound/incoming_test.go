package outbound

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/dsn"
	"github.com/postalgo/postal/daemon/queue"
	"github.com/postalgo/postal/daemon/store"
)

// storeIncoming stores and queues an incoming message and returns its claimed row.
func (e *env) storeIncoming(raw []byte, nm store.NewMessage) *store.QueuedMessage {
	e.t.Helper()
	nm.ServerID, nm.Scope, nm.Queue = e.fx.Server.ID, store.ScopeIncoming, true
	acc, err := e.s.InsertSubmissions(context.Background(), []store.Submission{{Raw: raw, Messages: []store.NewMessage{nm}}})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.claim([]int64{acc[0][0].QueuedID})[0]
}

func TestBounceHandler(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOptions{})
	if _, err := e.s.CreateWebhook(ctx, e.fx.Server.ID, store.NewWebhook{Name: "b", URL: "https://hooks.test/b",
		Events: []string{EventMessageBounced}, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	h, err := NewBounceHandler(BounceOptions{Store: e.s, Webhooks: e.q, Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	// An original message, delivered; the remote MTA later returns a DSN
	// quoting the headers it received.
	origRow := e.queueMessage("ok@dest.test")
	e.handle(origRow)
	orig := e.message(origRow.MessageID)
	sent := e.mail.received()[0].data
	remoteDSN, err := dsn.Build(dsn.Params{ReportingMTA: "mx1.dest.test", From: "MAILER-DAEMON@dest.test",
		To: e.fx.Server.Token + "@rp.postal.test", Date: e.now, MessageID: "dsn1@dest.test",
		Recipients: []dsn.Recipient{{Address: "ok@dest.test", Action: dsn.ActionFailed, Status: "5.2.2",
			DiagnosticCode: "smtp; 552 5.2.2 Mailbox full"}},
		OriginalHeaders: sent[:headerEnd(sent)]})
	if err != nil {
		t.Fatal(err)
	}
	bounceRow := e.storeIncoming(remoteDSN, store.NewMessage{RcptTo: e.fx.Server.Token + "@rp.postal.test",
		MailFrom: "", Bounce: true, QueueDomain: "rp.postal.test"})
	plainRow := e.storeIncoming(rawMessage("someone@example.com", "hello"), store.NewMessage{RcptTo: "someone@example.com",
		MailFrom: "x@far.test", QueueDomain: "example.com"})
	lostRow := e.storeIncoming([]byte("Subject: no idea\r\n\r\nnothing to link\r\n"), store.NewMessage{
		RcptTo: e.fx.Server.Token + "@rp.postal.test", Bounce: true, QueueDomain: "rp.postal.test"})

	outs := h.Handle(ctx, []*store.QueuedMessage{bounceRow, plainRow, lostRow})
	applied, err := e.s.RecordOutcomes(ctx, outs)
	if err != nil || !applied[0] || !applied[1] || !applied[2] {
		t.Fatalf("record = %v, %v", applied, err)
	}

	t.Run("a DSN marks its original bounced", func(t *testing.T) {
		o := e.message(orig.ID)
		if o.Status != store.StatusBounced {
			t.Errorf("original status = %s, want Bounced", o.Status)
		}
		ds := e.deliveries(orig.ID)
		last := ds[len(ds)-1]
		if last.Status != store.StatusBounced || !strings.Contains(last.Output, "552 5.2.2 Mailbox full") ||
			!strings.Contains(last.Details, "We've received a bounce message for this e-mail.") {
			t.Errorf("last delivery = %+v", last)
		}
		b := e.message(bounceRow.MessageID)
		if b.Status != store.StatusProcessed || b.BounceForID != orig.ID || b.DomainID != orig.DomainID {
			t.Errorf("bounce = status %s for %d domain %d", b.Status, b.BounceForID, b.DomainID)
		}
		entries, err := e.q.Read(ctx, queue.Webhooks, "test", 10, 0)
		if err != nil || len(entries) != 1 {
			t.Fatalf("webhook entries %v, %v", entries, err)
		}
		reqs, err := e.s.WebhookRequests(ctx, []int64{entries[0].Job.ID})
		if err != nil || len(reqs) != 1 || reqs[0].Event != EventMessageBounced {
			t.Fatalf("requests %+v, %v", reqs, err)
		}
		var p BouncedPayload
		if err := json.Unmarshal([]byte(reqs[0].Payload), &p); err != nil {
			t.Fatal(err)
		}
		if p.OriginalMessage.ID != orig.ID || p.Bounce.ID != b.ID || p.Bounce.Direction != "incoming" {
			t.Errorf("payload = %+v", p)
		}
	})
	t.Run("other incoming mail is left for routing", func(t *testing.T) {
		o := outs[1]
		if !o.Retry || !o.RetryAfter.Equal(e.now.Add(time.Hour)) || o.Status != "" || o.Delivery != nil || o.Details != "waiting for inbound routing" {
			t.Errorf("outcome = %+v", o)
		}
		if m := e.message(plainRow.MessageID); m.Status != store.StatusPending || len(e.deliveries(m.ID)) != 0 {
			t.Errorf("message touched: %s", m.Status)
		}
	})
	t.Run("an unlinkable bounce hard-fails", func(t *testing.T) {
		m := e.message(lostRow.MessageID)
		if m.Status != store.StatusHardFail {
			t.Errorf("status = %s", m.Status)
		}
	})
}
