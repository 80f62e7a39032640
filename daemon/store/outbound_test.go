package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// queueOutgoing stores one outgoing message per recipient, queued.
func queueOutgoing(t *testing.T, s *store.Store, fx storetest.Fixture, rcpts ...string) []store.Accepted {
	t.Helper()
	var msgs []store.NewMessage
	for _, r := range rcpts {
		msgs = append(msgs, store.NewMessage{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: r,
			MailFrom: "a@example.com", DomainID: fx.Domain.ID, Queue: true, QueueDomain: "dest.test"})
	}
	acc, err := s.InsertSubmissions(context.Background(), []store.Submission{{Raw: []byte("Subject: x\r\n\r\nbody"), Messages: msgs}})
	if err != nil {
		t.Fatal(err)
	}
	return acc[0]
}

// finish records a final outcome with status for a queued message.
func finish(t *testing.T, s *store.Store, a store.Accepted, status string, held bool) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	if _, err := s.ClaimQueued(ctx, []int64{a.QueuedID}, "w", now.Add(time.Second), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	q := &store.QueuedMessage{ID: a.QueuedID, MessageID: a.MessageID, LockedBy: "w"}
	var out store.Outcome
	switch {
	case held:
		out = store.Hold(q, now.Add(time.Hour), "")
	case status == store.StatusSent:
		out = store.Sent(q, store.NewDelivery{})
	case status == store.StatusHardFail:
		out = store.HardFail(q, store.NewDelivery{})
	default:
		t.Fatalf("finish: no outcome for status %s", status)
	}
	applied, err := s.RecordOutcomes(ctx, []store.Outcome{out})
	if err != nil || !applied[0] {
		t.Fatalf("record: %v %v", applied, err)
	}
}

func TestRawMessagesAndManualQueued(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		acc := queueOutgoing(t, s, fx, "a@dest.test", "b@dest.test")
		m, err := s.Message(ctx, acc[0].MessageID)
		if err != nil {
			t.Fatal(err)
		}
		raws, err := s.RawMessages(ctx, []int64{m.RawMessageID, m.RawMessageID + 99})
		if err != nil || len(raws) != 1 || string(raws[m.RawMessageID]) != "Subject: x\r\n\r\nbody" {
			t.Fatalf("raws = %v, %v", raws, err)
		}
		manual, err := s.ManualQueued(ctx, []int64{acc[0].QueuedID, acc[1].QueuedID})
		if err != nil || len(manual) != 0 {
			t.Fatalf("manual = %v, %v; want none", manual, err)
		}
		c, err := s.CredentialByID(ctx, fx.Credential.ID)
		if err != nil || c.ID != fx.Credential.ID {
			t.Fatalf("credential = %+v, %v", c, err)
		}
		if _, err := s.CredentialByID(ctx, 9999); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown credential: %v", err)
		}
	})
}

func TestReleaseHeld(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		acc := queueOutgoing(t, s, fx, "Held@Dest.test", "sent@dest.test")
		if _, err := s.ReleaseHeld(ctx, acc[0].MessageID); !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotHeld) {
			t.Fatalf("releasing a pending message: %v", err)
		}
		finish(t, s, acc[0], store.StatusHeld, true)
		finish(t, s, acc[1], store.StatusSent, false)
		if _, err := s.ReleaseHeld(ctx, acc[1].MessageID); !errors.Is(err, store.ErrNotHeld) {
			t.Errorf("releasing a sent message: %v, want ErrNotHeld", err)
		}
		if _, err := s.ReleaseHeld(ctx, 99999); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("releasing an unknown message: %v, want ErrNotFound", err)
		}
		q, err := s.ReleaseHeld(ctx, acc[0].MessageID)
		if err != nil {
			t.Fatal(err)
		}
		if q.MessageID != acc[0].MessageID || q.Scope != store.ScopeOutgoing || q.Domain != "dest.test" || q.Attempts != 0 {
			t.Errorf("queued = %+v", q)
		}
		manual, err := s.ManualQueued(ctx, []int64{q.ID})
		if err != nil || !manual[q.ID] {
			t.Errorf("manual = %v, %v", manual, err)
		}
		if m, _ := s.Message(ctx, acc[0].MessageID); m.Held || !m.HoldExpiry.IsZero() {
			t.Errorf("message still held: %+v", m)
		}
		if _, err := s.ReleaseHeld(ctx, acc[0].MessageID); !errors.Is(err, store.ErrNotHeld) && !errors.Is(err, store.ErrConflict) {
			t.Errorf("second release: %v", err)
		}
		due, err := s.DueQueued(ctx, time.Now().Add(time.Second), 0, 10)
		if err != nil || len(due) != 1 || due[0].ID != q.ID {
			t.Errorf("due = %v, %v; want the released row", due, err)
		}
	})
}

func TestSuppressionsForDelivery(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		now := time.Now().Truncate(time.Microsecond)
		err := s.AddSuppressions(ctx, []store.NewSuppression{
			{ServerID: fx.Server.ID, Address: "Bob@Dest.test", Reason: "hard fail", KeepUntil: now.Add(time.Hour)},
			{ServerID: fx.Server.ID, Address: "old@dest.test", Reason: "old", KeepUntil: now.Add(-time.Hour)},
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.ActiveSuppressions(ctx, fx.Server.ID, []string{"bob@dest.test", "OLD@dest.test", "none@dest.test"}, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got["bob@dest.test"] == nil || got["bob@dest.test"].Reason != "hard fail" || !got["bob@dest.test"].KeepUntil.Equal(now.Add(time.Hour)) {
			t.Fatalf("active = %+v, want only bob", got)
		}
		// A second add refreshes the entry.
		if err := s.AddSuppressions(ctx, []store.NewSuppression{{ServerID: fx.Server.ID, Address: "old@dest.test", Reason: "again",
			KeepUntil: now.Add(2 * time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.ActiveSuppressions(ctx, fx.Server.ID, []string{"old@dest.test"}, now); got["old@dest.test"] == nil || got["old@dest.test"].Reason != "again" {
			t.Errorf("refreshed = %+v", got)
		}
		removed, err := s.RemoveSuppression(ctx, fx.Server.ID, "BOB@dest.test")
		if err != nil || !removed {
			t.Fatalf("remove = %v, %v", removed, err)
		}
		if removed, _ := s.RemoveSuppression(ctx, fx.Server.ID, "bob@dest.test"); removed {
			t.Error("second remove reported a removal")
		}
	})
}

func TestOutgoingVolumeCountsAttemptedMessages(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		acc := queueOutgoing(t, s, fx, "a@dest.test", "b@dest.test", "c@dest.test", "d@dest.test")
		finish(t, s, acc[0], store.StatusSent, false)
		finish(t, s, acc[1], store.StatusHardFail, false)
		finish(t, s, acc[2], store.StatusHeld, true)
		since := time.Now().Add(-time.Hour)
		n, err := s.OutgoingVolume(ctx, fx.Server.ID, since)
		if err != nil || n != 2 {
			t.Fatalf("volume = %d, %v; want 2 (sent + hard-failed; not held, not pending)", n, err)
		}
		if n, _ := s.OutgoingVolume(ctx, fx.Server.ID, time.Now().Add(time.Hour)); n != 0 {
			t.Errorf("volume in the future = %d", n)
		}
	})
}

func TestWebhookRequestsAndBounceLinking(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		hook, err := s.CreateWebhook(ctx, fx.Server.ID, store.NewWebhook{Name: "h", URL: "https://h.test", AllEvents: true, Enabled: true})
		if err != nil {
			t.Fatal(err)
		}
		ids, err := s.InsertWebhookRequests(ctx, []store.NewWebhookRequest{
			{ServerID: fx.Server.ID, WebhookID: hook.ID, URL: hook.URL, Event: "MessageSent", Payload: `{"a":1}`},
			{ServerID: fx.Server.ID, WebhookID: hook.ID, URL: hook.URL, Event: "MessageHeld", Payload: `{"b":2}`},
		})
		if err != nil || len(ids) != 2 {
			t.Fatalf("insert = %v, %v", ids, err)
		}
		reqs, err := s.WebhookRequests(ctx, ids)
		if err != nil || len(reqs) != 2 {
			t.Fatalf("load = %v, %v", reqs, err)
		}
		if r := reqs[1]; r.Event != "MessageHeld" || r.Payload != `{"b":2}` || r.WebhookID != hook.ID || r.Attempts != 0 || r.UUID == "" {
			t.Errorf("request = %+v", r)
		}

		acc := queueOutgoing(t, s, fx, "a@dest.test")
		bounce, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("x"), Messages: []store.NewMessage{{
			ServerID: fx.Server.ID, Scope: store.ScopeIncoming, RcptTo: "rp@rp.test", Bounce: true}}}})
		if err != nil {
			t.Fatal(err)
		}
		b := bounce[0][0].MessageID
		if err := s.MarkBounced(ctx, acc[0].MessageID, b, "bounced", "5.1.1 gone"); err != nil {
			t.Fatal(err)
		}
		orig, _ := s.Message(ctx, acc[0].MessageID)
		bm, _ := s.Message(ctx, b)
		ds, _ := s.Deliveries(ctx, orig.ID)
		if orig.Status != store.StatusBounced || bm.BounceForID != orig.ID || bm.DomainID != fx.Domain.ID ||
			len(ds) != 1 || ds[0].Status != store.StatusBounced || ds[0].Output != "5.1.1 gone" {
			t.Errorf("orig %s, bounce for %d domain %d, deliveries %+v", orig.Status, bm.BounceForID, bm.DomainID, ds)
		}
		if err := s.MarkBounced(ctx, 99999, b, "x", ""); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown original: %v", err)
		}
	})
}

func TestIPPoolRouting(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		def, err := s.CreateIPPool(ctx, "main", true)
		if err != nil {
			t.Fatal(err)
		}
		other, err := s.CreateIPPool(ctx, "other", false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateIPAddress(ctx, store.NewIPAddress{PoolID: other.ID, IPv4: "10.0.0.2", Hostname: "o.test"}); err != nil {
			t.Fatal(err)
		}
		r1, err := s.CreateIPPoolRule(ctx, store.NewIPPoolRule{ServerID: fx.Server.ID, PoolID: other.ID, To: []string{"a.test"}})
		if err != nil {
			t.Fatal(err)
		}
		r2, err := s.CreateIPPoolRule(ctx, store.NewIPPoolRule{ServerID: fx.Server.ID, PoolID: def.ID, From: []string{"b.test"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateIPPoolRule(ctx, store.NewIPPoolRule{OrganizationID: fx.Org.ID, PoolID: def.ID, To: []string{"c.test"}}); err != nil {
			t.Fatal(err)
		}
		rt, err := s.IPPoolRouting(ctx, fx.Server.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rt.DefaultPoolID != def.ID || rt.ServerPoolID != 0 {
			t.Errorf("pools = default %d server %d", rt.DefaultPoolID, rt.ServerPoolID)
		}
		if len(rt.ServerRules) != 2 || rt.ServerRules[0].ID != r2.ID || rt.ServerRules[1].ID != r1.ID {
			t.Errorf("server rules not newest first: %+v", rt.ServerRules)
		}
		if len(rt.OrganizationRules) != 1 || rt.OrganizationRules[0].To[0] != "c.test" {
			t.Errorf("organization rules = %+v", rt.OrganizationRules)
		}
		if a := rt.Addresses[other.ID]; len(a) != 1 || a[0].IPv4 != "10.0.0.2" {
			t.Errorf("addresses = %+v", rt.Addresses)
		}
		if _, err := s.IPPoolRouting(ctx, 99999); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown server: %v", err)
		}
	})
}
