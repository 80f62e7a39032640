package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// TestClaimLoads: the rows a claim returns carry what their handler reads,
// read with the claim: message, body, manual flag and, for outgoing rows,
// the recipient's suppression in force (compared case-insensitively, also
// beyond ASCII); a body removed by retention loads as nil.
func TestClaimLoads(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := storetest.NewFixture(t, s, "example.com", "")
		now := time.Now()
		acc := submit(t, s, f, "plain@dest.test", "SUP@Dest.test", "old@dest.test", "Ünï@dest.test", "gone@dest.test")
		err := s.AddSuppressions(ctx, []store.NewSuppression{
			{ServerID: f.Server.ID, Address: "sup@dest.test", Reason: "bounced", KeepUntil: now.Add(time.Hour)},
			{ServerID: f.Server.ID, Address: "old@dest.test", Reason: "bounced", KeepUntil: now.Add(-time.Hour)},
			{ServerID: f.Server.ID, Address: "ünï@dest.test", Reason: "spam", KeepUntil: now.Add(time.Hour)},
		})
		if err != nil {
			t.Fatal(err)
		}
		// The last message's own body goes (it shares the submission's
		// body, so give it one of its own first).
		gone, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("Subject: other\r\n\r\nx"), Messages: []store.NewMessage{{
			ServerID: f.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "gone@dest.test", MailFrom: "a@example.com",
			Queue: true, QueueDomain: "dest.test"}}}})
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.Message(ctx, gone[0][0].MessageID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.DBForTest().ExecContext(ctx, rebind(s, `DELETE FROM raw_messages WHERE id = ?`), m.RawMessageID); err != nil {
			t.Fatal(err)
		}
		ids := []int64{acc[0].QueuedID, acc[1].QueuedID, acc[2].QueuedID, acc[3].QueuedID, gone[0][0].QueuedID}
		rows, err := s.ClaimQueued(ctx, ids, "w1", now.Add(time.Second), now.Add(time.Hour))
		if err != nil || len(rows) != len(ids) {
			t.Fatalf("claim = %d rows, %v", len(rows), err)
		}
		wantSup := []string{"", "sup@dest.test", "", "ünï@dest.test", ""}
		for i, r := range rows {
			if r.ID != ids[i] || r.LockedBy != "w1" {
				t.Fatalf("row %d = %+v, want queued %d locked by w1", i, r, ids[i])
			}
			l := r.Loaded
			if l == nil || l.Message == nil || l.Message.ID != r.MessageID || l.Manual {
				t.Fatalf("row %d loaded = %+v", i, l)
			}
			if i < 4 && string(l.Raw) != "Subject: hi\r\n\r\nbody\r\n" {
				t.Fatalf("row %d body = %q", i, l.Raw)
			}
			got := ""
			if l.Suppression != nil {
				got = l.Suppression.Address
				if l.Suppression.ServerID != f.Server.ID || l.Suppression.Reason == "" || !l.Suppression.KeepUntil.After(now) {
					t.Fatalf("row %d suppression = %+v", i, l.Suppression)
				}
			}
			if got != wantSup[i] {
				t.Fatalf("row %d (%s) suppression = %q, want %q", i, l.Message.RcptTo, got, wantSup[i])
			}
		}
		if rows[4].Loaded.Raw != nil {
			t.Fatalf("removed body loaded as %q", rows[4].Loaded.Raw)
		}
		// Rows already claimed are not claimed (nor loaded) again.
		if again, err := s.ClaimQueued(ctx, ids, "w2", now.Add(time.Second), now.Add(time.Hour)); err != nil || len(again) != 0 {
			t.Fatalf("second claim = %d, %v", len(again), err)
		}
	})
}

// TestClaimLoadsManualAndIncoming: a row released by hand loads as manual;
// an incoming row loads no suppression even when its recipient has one;
// the batching claim loads as the claim does.
func TestClaimLoadsManualAndIncoming(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := storetest.NewFixture(t, s, "example.com", "")
		now := time.Now()
		acc, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("Subject: x\r\n\r\nbody"), Messages: []store.NewMessage{
			{ServerID: f.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "held@dest.test", MailFrom: "a@example.com",
				Held: true, Status: store.StatusHeld},
			{ServerID: f.Server.ID, Scope: store.ScopeIncoming, RcptTo: "in@example.com", MailFrom: "b@elsewhere.test",
				Queue: true, QueueDomain: "example.com"},
			{ServerID: f.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "batch@dest.test", MailFrom: "a@example.com",
				Queue: true, QueueDomain: "dest.test"},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddSuppressionForTest(ctx, f.Server.ID, "in@example.com", now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		rel, err := s.ReleaseHeld(ctx, acc[0][0].MessageID)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s.ClaimQueued(ctx, []int64{rel.ID, acc[0][1].QueuedID}, "w1", now.Add(time.Second), now.Add(time.Hour))
		if err != nil || len(rows) != 2 {
			t.Fatalf("claim = %d rows, %v", len(rows), err)
		}
		byID := map[int64]*store.QueuedMessage{rows[0].ID: rows[0], rows[1].ID: rows[1]}
		if l := byID[rel.ID].Loaded; l == nil || !l.Manual || l.Message.RcptTo != "held@dest.test" || string(l.Raw) != "Subject: x\r\n\r\nbody" {
			t.Fatalf("released row loaded = %+v", l)
		}
		if l := byID[acc[0][1].QueuedID].Loaded; l == nil || l.Manual || l.Suppression != nil || l.Message.Scope != store.ScopeIncoming {
			t.Fatalf("incoming row loaded = %+v", l)
		}
		batch, err := s.ClaimQueuedForDomain(ctx, store.ScopeOutgoing, "dest.test", "w1", now.Add(time.Second), now.Add(time.Hour), 10)
		if err != nil || len(batch) != 1 {
			t.Fatalf("batch claim = %d, %v", len(batch), err)
		}
		if l := batch[0].Loaded; l == nil || l.Message == nil || l.Message.RcptTo != "batch@dest.test" || len(l.Raw) == 0 {
			t.Fatalf("batched row loaded = %+v", l)
		}
	})
}

// rebind writes a test statement's placeholders for s's database.
func rebind(s *store.Store, q string) string {
	if s.Driver() == store.Postgres {
		return strings.Replace(q, "?", "$1", 1)
	}
	return q
}

// TestClaimSkipsCancelledAndDeleted: a message cancelled or deleted before
// the claim is neither claimed nor loaded; the others of the batch are.
func TestClaimSkipsCancelledAndDeleted(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := storetest.NewFixture(t, s, "example.com", "")
		acc := submit(t, s, f, "cancel@dest.test", "delete@dest.test", "keep@dest.test")
		if err := s.CancelMessage(ctx, acc[0].MessageID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteMessage(ctx, acc[1].MessageID); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		rows, err := s.ClaimQueued(ctx, []int64{acc[0].QueuedID, acc[1].QueuedID, acc[2].QueuedID}, "w1", now.Add(time.Second), now.Add(time.Hour))
		if err != nil || len(rows) != 1 || rows[0].ID != acc[2].QueuedID || rows[0].Loaded.Message.RcptTo != "keep@dest.test" {
			t.Fatalf("claim = %+v, %v; want only keep@dest.test's row", rows, err)
		}
	})
}

// TestLoadUnloaded: rows claimed without their data get message, body and
// manual flag read in one call; rows that carry Loaded are left out, and a
// row whose message is gone maps to a Loaded without a message.
func TestLoadUnloaded(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := storetest.NewFixture(t, s, "example.com", "")
		now := time.Now()
		acc := submit(t, s, f, "one@dest.test", "two@dest.test")
		rows, err := s.ClaimQueued(ctx, []int64{acc[0].QueuedID, acc[1].QueuedID}, "w1", now.Add(time.Second), now.Add(time.Hour))
		if err != nil || len(rows) != 2 {
			t.Fatalf("claim = %d rows, %v", len(rows), err)
		}
		bare := *rows[0]
		bare.Loaded = nil
		ghost := &store.QueuedMessage{ID: rows[1].ID + 1000, MessageID: rows[1].MessageID + 1000}
		got, err := s.LoadUnloaded(ctx, []*store.QueuedMessage{&bare, rows[1], ghost})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("loaded %d rows, want 2 (the bare row and the ghost): %v", len(got), got)
		}
		l := got[bare.ID]
		if l == nil || l.Message == nil || l.Message.ID != bare.MessageID || l.Message.RcptTo != "one@dest.test" ||
			string(l.Raw) != "Subject: hi\r\n\r\nbody\r\n" || l.Manual || l.Suppression != nil {
			t.Fatalf("bare row loaded = %+v", l)
		}
		if _, ok := got[rows[1].ID]; ok {
			t.Fatal("a row carrying Loaded was read again")
		}
		if g := got[ghost.ID]; g == nil || g.Message != nil || g.Raw != nil {
			t.Fatalf("row without a message loaded = %+v", g)
		}
		if none, err := s.LoadUnloaded(ctx, rows); err != nil || len(none) != 0 {
			t.Fatalf("all rows loaded: %v, %v", none, err)
		}
	})
}
