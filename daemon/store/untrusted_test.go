package store_test

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// hostileOutput is a reply whose 512-byte cut falls inside a two-byte
// character, after Latin-1 bytes and a NUL.
var hostileOutput = "250 2.0.0 Nachricht f\xfcr Empf\xe4nger\x00 " + strings.Repeat("é", 300)

// TestOutcomeTextIsStoredSafely: whatever bytes an outcome carries (Latin-1,
// NUL, a cut inside a character), the batch commits on both databases and
// what is stored is valid UTF-8 without NUL, within the caps.
func TestOutcomeTextIsStoredSafely(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		acc := queueOutgoing(t, s, fx, "a@dest.test", "b@dest.test", "c@dest.test")
		now := time.Now()
		ids := []int64{acc[0].QueuedID, acc[1].QueuedID, acc[2].QueuedID}
		if got, err := s.ClaimQueued(ctx, ids, "w", now, now.Add(time.Hour)); err != nil || len(got) != 3 {
			t.Fatalf("claim = %d, %v", len(got), err)
		}
		claimed, err := s.QueuedByIDs(ctx, ids)
		if err != nil || len(claimed) != 3 {
			t.Fatalf("queued rows = %d, %v", len(claimed), err)
		}
		byID := map[int64]*store.QueuedMessage{}
		for _, q := range claimed {
			byID[q.ID] = q
		}
		outs := []store.Outcome{
			store.Sent(byID[acc[0].QueuedID], store.NewDelivery{Details: "accepted by mx\x00.dest.test", Output: hostileOutput}),
			store.SoftFail(byID[acc[1].QueuedID], now.Add(time.Minute),
				store.NewDelivery{Details: "temporary: Zur\xfcck " + strings.Repeat("x", 5000), Output: "451 \xff\xfe\x00"}),
			store.Sent(byID[acc[2].QueuedID], store.NewDelivery{Output: "250 ok"}),
		}
		applied, err := s.RecordOutcomes(ctx, outs)
		if err != nil {
			t.Fatalf("RecordOutcomes: %v", err)
		}
		for i, ok := range applied {
			if !ok {
				t.Errorf("outcome %d not applied", i)
			}
		}
		ds, err := s.Deliveries(ctx, acc[0].MessageID)
		if err != nil || len(ds) != 1 {
			t.Fatalf("deliveries = %+v, %v", ds, err)
		}
		want := "250 2.0.0 Nachricht für Empfänger\uFFFD " + strings.Repeat("é", 236)
		if ds[0].Output != want {
			t.Errorf("output = %q (%d bytes), want %q (%d bytes)", ds[0].Output, len(ds[0].Output), want, len(want))
		}
		if ds[0].Details != "accepted by mx\uFFFD.dest.test" {
			t.Errorf("details = %q", ds[0].Details)
		}
		ds, err = s.Deliveries(ctx, acc[1].MessageID)
		if err != nil || len(ds) != 1 || ds[0].Output != "451 ÿþ\uFFFD" {
			t.Fatalf("soft-fail deliveries = %+v, %v", ds, err)
		}
		if d := ds[0].Details; !strings.HasPrefix(d, "temporary: Zurück xxx") || len(d) != 4096 {
			t.Errorf("delivery details = %q... (%d bytes), want the first 4096 bytes read as Latin-1", d[:30], len(d))
		}

		// The other writers of foreign text: bounces, dead letters, suppressions.
		bounce, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("x"), Messages: []store.NewMessage{{
			ServerID: fx.Server.ID, Scope: store.ScopeIncoming, RcptTo: "rp@rp.test", Bounce: true}}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.MarkBounced(ctx, acc[2].MessageID, bounce[0][0].MessageID, "bounce \x00", "550 5.1.1 unbekannt\xe9\x00"); err != nil {
			t.Fatalf("MarkBounced: %v", err)
		}
		ds, _ = s.Deliveries(ctx, acc[2].MessageID)
		if len(ds) != 2 || ds[1].Output != "550 5.1.1 unbekannté\uFFFD" || ds[1].Details != "bounce \uFFFD" {
			t.Errorf("bounce delivery = %+v", ds)
		}
		if err := s.FailQueued(ctx, acc[1].QueuedID, "dead: \xe9\x00"); err != nil {
			t.Fatalf("FailQueued: %v", err)
		}
		if m, _ := s.Message(ctx, acc[1].MessageID); m.Details != "dead: é\uFFFD" {
			t.Errorf("dead-lettered details = %q", m.Details)
		}
		if err := s.AddSuppressions(ctx, []store.NewSuppression{{ServerID: fx.Server.ID, Address: "a@dest.test",
			Reason: "hard fail: 550 f\xfcr\x00", KeepUntil: now.Add(time.Hour)}}); err != nil {
			t.Fatalf("AddSuppressions: %v", err)
		}
		sup, err := s.ActiveSuppressions(ctx, fx.Server.ID, []string{"a@dest.test"}, now)
		if err != nil || sup["a@dest.test"] == nil || sup["a@dest.test"].Reason != "hard fail: 550 für\uFFFD" {
			t.Errorf("suppressions = %+v, %v", sup, err)
		}
		for _, d := range ds {
			if !utf8.ValidString(d.Output) || !utf8.ValidString(d.Details) {
				t.Errorf("stored invalid UTF-8: %+v", d)
			}
		}
	})
}
