package inbound

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/dsn"
	"github.com/postalgo/postal/daemon/endpoint"
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

// sent stores an outgoing message to rcpt with Message-ID msgID and
// records it Sent.
func (e *env) sent(rcpt, msgID string) *store.Message {
	e.t.Helper()
	row := e.store([]byte("Message-ID: <"+msgID+">\r\nSubject: hi\r\n\r\nhello\r\n"), store.NewMessage{Scope: store.ScopeOutgoing,
		RcptTo: rcpt, MailFrom: "sender@example.com", MessageID: msgID, DomainID: e.fx.Domain.ID, QueueDomain: "dest.test"})
	if _, err := e.s.RecordOutcomes(context.Background(), []store.Outcome{store.Sent(row, store.NewDelivery{})}); err != nil {
		e.t.Fatal(err)
	}
	return e.message(row.MessageID)
}

func (e *env) bounce(raw []byte, bounceFor int64) *store.QueuedMessage {
	return e.store(raw, store.NewMessage{Scope: store.ScopeIncoming, RcptTo: e.fx.Server.Token + "@rp.postal.test",
		Bounce: true, BounceForID: bounceFor, QueueDomain: "rp.postal.test"})
}

func (e *env) suppressed(addr string) *store.Suppression {
	e.t.Helper()
	got, err := e.s.ActiveSuppressions(context.Background(), e.fx.Server.ID, []string{addr}, e.now)
	if err != nil {
		e.t.Fatal(err)
	}
	return got[strings.ToLower(addr)]
}

// qmailBounce is a plain-text bounce for rcpt quoting Message-ID msgID
// (and no X-Postal-MsgID), failing with code.
func qmailBounce(rcpt, msgID, code string) []byte {
	return []byte("From: MAILER-DAEMON@mx.dest.test\r\nSubject: failure notice\r\n\r\n" +
		"Hi. This is the qmail-send program at mx.dest.test.\r\n" +
		"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n" +
		"This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n<" + rcpt + ">:\r\n" +
		"Remote host said: " + code + "\r\n\r\n--- Below this line is a copy of the message.\r\n\r\n" +
		"Message-ID: <" + msgID + ">\r\nSubject: hi\r\n\r\nhello\r\n")
}

func TestBounces(t *testing.T) {
	key := testKey(t)
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		e := &env{t: t, s: s, fx: storetest.NewFixture(t, s, "example.com", ""), now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
		if _, err := s.CreateWebhook(ctx, e.fx.Server.ID, store.NewWebhook{Name: "b", URL: "https://hooks.test/b",
			Events: []string{webhook.EventMessageBounced}, Enabled: true}); err != nil {
			t.Fatal(err)
		}
		rcv := &receiver{status: map[string]int{}, hits: map[string]int{}, bodies: map[string][]byte{}, key: key}
		srv := httptest.NewServer(rcv)
		defer srv.Close()
		client, err := endpoint.New(endpoint.Options{Signer: key, UserAgent: "Postal/test"})
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		handler := func(suppress bool) *Handler {
			h, err := New(Options{Store: s, HTTP: client, Now: func() time.Time { return e.now }, ReturnPathDomain: "rp.postal.test",
				SuppressHardBounces: suppress, SuppressFor: 30 * 24 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
		h := handler(true)

		// A soft bounce (RFC 3464, 5.2.2) linked by X-Postal-MsgID.
		full := e.sent("full@dest.test", "m-full@example.com")
		fullDSN, err := dsn.Build(dsn.Params{ReportingMTA: "mx1.dest.test", From: "MAILER-DAEMON@dest.test",
			To: e.fx.Server.Token + "@rp.postal.test", Date: e.now, MessageID: "dsn1@dest.test",
			Recipients: []dsn.Recipient{{Address: "full@dest.test", Action: dsn.ActionFailed, Status: "5.2.2",
				DiagnosticCode: "smtp; 552 5.2.2 Mailbox full"}},
			OriginalHeaders: []byte("X-Postal-MsgID: " + full.Token + "\r\nSubject: hi\r\n\r\n")})
		if err != nil {
			t.Fatal(err)
		}
		softRow := e.bounce(fullDSN, 0)
		// A hard bounce (qmail text, 5.1.1) linked by the returned Message-ID.
		gone := e.sent("gone@dest.test", "m-gone@example.com")
		hardRow := e.bounce(qmailBounce("gone@dest.test", "m-gone@example.com", "550 5.1.1 no such user"), 0)
		// The same Message-ID sent to two recipients: the report names one.
		a := e.sent("a@dest.test", "m-two@example.com")
		b := e.sent("b@dest.test", "m-two@example.com")
		twoRow := e.bounce(qmailBounce("b@dest.test", "m-two@example.com", "550 5.1.1 unknown"), 0)
		// Nothing but the return-path tag links this one.
		tagged := e.sent("tagged@dest.test", "m-tagged@example.com")
		tagRow := e.bounce([]byte("Subject: returned\r\n\r\nYour mail could not be delivered.\r\n"), tagged.ID)
		// Linked to nothing, and the server has no __returnpath__ route.
		lostRow := e.bounce([]byte("Subject: no idea\r\n\r\nnothing to link\r\n"), 0)

		outs := h.Handle(ctx, []*store.QueuedMessage{softRow, hardRow, twoRow, tagRow, lostRow})
		// Handling writes nothing: the originals are untouched until the
		// outcomes commit.
		if m := e.message(full.ID); m.Status != store.StatusSent {
			t.Fatalf("original changed before the commit: %s", m.Status)
		}
		if e.suppressed("gone@dest.test") != nil {
			t.Fatal("suppressed before the commit")
		}
		res, err := s.CommitOutcomes(ctx, outs)
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
		for i, ok := range res.Applied {
			if !ok {
				t.Fatalf("outcome %d not applied", i)
			}
		}
		lastDelivery := func(id int64) store.Delivery {
			t.Helper()
			ds, err := s.Deliveries(ctx, id)
			if err != nil || len(ds) == 0 {
				t.Fatalf("deliveries of %d: %v %v", id, ds, err)
			}
			return *ds[len(ds)-1]
		}

		t.Run("a soft bounce marks its original bounced and fires MessageBounced, without suppression", func(t *testing.T) {
			if o := e.message(full.ID); o.Status != store.StatusBounced {
				t.Errorf("original status = %s, want Bounced", o.Status)
			}
			last := lastDelivery(full.ID)
			if last.Status != store.StatusBounced || last.Output != "soft bounce: 5.2.2 smtp; 552 5.2.2 Mailbox full" ||
				last.Details != "We've received a bounce message for this e-mail. See <msg:"+strconv.FormatInt(softRow.MessageID, 10)+"> for details." {
				t.Errorf("last delivery = %+v", last)
			}
			if e.suppressed("full@dest.test") != nil {
				t.Error("a soft bounce suppressed its recipient")
			}
			bm := e.message(softRow.MessageID)
			if bm.Status != store.StatusProcessed || bm.BounceForID != full.ID {
				t.Errorf("bounce = status %s for %d", bm.Status, bm.BounceForID)
			}
			reqs, err := s.WebhookRequests(ctx, res.Webhooks)
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, r := range reqs {
				var p webhook.Bounced
				if err := json.Unmarshal([]byte(r.Payload), &p); err != nil {
					t.Fatal(err)
				}
				if r.Event == webhook.EventMessageBounced && p.OriginalMessage.ID == full.ID && p.Bounce.ID == bm.ID &&
					p.Bounce.Direction == "incoming" {
					found = true
				}
			}
			if !found || len(reqs) != 4 { // one per linked original
				t.Errorf("%d webhook requests, MessageBounced for the soft one found: %v", len(reqs), found)
			}
		})
		t.Run("a hard bounce linked by Message-ID suppresses its recipient", func(t *testing.T) {
			if o := e.message(gone.ID); o.Status != store.StatusBounced {
				t.Errorf("original status = %s", o.Status)
			}
			last := lastDelivery(gone.ID)
			if !strings.HasPrefix(last.Output, "hard bounce: 5.1.1") || !strings.HasSuffix(last.Details, detailsSuppressed) {
				t.Errorf("last delivery = %+v", last)
			}
			sup := e.suppressed("gone@dest.test")
			if sup == nil || sup.Reason != SuppressionReason || !sup.KeepUntil.Equal(e.now.Add(30*24*time.Hour)) {
				t.Errorf("suppression = %+v", sup)
			}
		})
		t.Run("a shared Message-ID links only the reported recipient", func(t *testing.T) {
			if st := e.message(a.ID).Status; st != store.StatusSent {
				t.Errorf("a: %s, want Sent", st)
			}
			if st := e.message(b.ID).Status; st != store.StatusBounced {
				t.Errorf("b: %s, want Bounced", st)
			}
		})
		t.Run("the return-path tag links a bounce without a report", func(t *testing.T) {
			if st := e.message(tagged.ID).Status; st != store.StatusBounced {
				t.Errorf("tagged: %s, want Bounced", st)
			}
			if e.suppressed("tagged@dest.test") != nil {
				t.Error("a bounce without a report suppressed")
			}
		})
		t.Run("an unlinked bounce without a route is kept, processed", func(t *testing.T) {
			m := e.message(lostRow.MessageID)
			if m.Status != store.StatusProcessed || lastDelivery(m.ID).Details != detailsUnlinked {
				t.Errorf("status = %s, delivery %+v", m.Status, lastDelivery(m.ID))
			}
		})
		t.Run("hard bounces do not suppress when switched off", func(t *testing.T) {
			other := e.sent("other@dest.test", "m-other@example.com")
			row := e.bounce(qmailBounce("other@dest.test", "m-other@example.com", "550 5.1.1 no such user"), 0)
			if _, err := s.CommitOutcomes(ctx, handler(false).Handle(ctx, []*store.QueuedMessage{row})); err != nil {
				t.Fatal(err)
			}
			if st := e.message(other.ID).Status; st != store.StatusBounced || e.suppressed("other@dest.test") != nil {
				t.Errorf("status %s, suppressed %v", st, e.suppressed("other@dest.test"))
			}
		})
		t.Run("an unlinked bounce goes to the __returnpath__ route created since", func(t *testing.T) {
			row := e.bounce([]byte("Subject: Out of office\r\n\r\nI am away.\r\n"), 0)
			if _, err := s.CreateReturnPathRoute(ctx, e.fx.Server.ID, srv.URL+"/rp"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CommitOutcomes(ctx, h.Handle(ctx, []*store.QueuedMessage{row})); err != nil {
				t.Fatal(err)
			}
			rcv.mu.Lock()
			hits, body := rcv.hits["/rp"], string(rcv.bodies["/rp"])
			rcv.mu.Unlock()
			if m := e.message(row.MessageID); hits != 1 || m.Status != store.StatusSent || !strings.Contains(body, "Out of office") {
				t.Errorf("hits %d status %s body %s", hits, m.Status, body)
			}
		})
	})
}
