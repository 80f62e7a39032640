package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

const day = 24 * time.Hour

// insertAt stores one single-recipient submission with the store clock set
// to at, and returns it.
func insertAt(t *testing.T, s *store.Store, clock *time.Time, at time.Time, m store.NewMessage, raw []byte) store.Accepted {
	t.Helper()
	*clock = at
	if m.Scope == "" {
		m.Scope = store.ScopeOutgoing
	}
	if m.RcptTo == "" {
		m.RcptTo = "rcpt@dest.test"
	}
	if raw == nil {
		raw = []byte("Subject: x\r\n\r\nx\r\n")
	}
	acc, err := s.InsertSubmissions(context.Background(), []store.Submission{{Raw: raw, Messages: []store.NewMessage{m}}})
	if err != nil {
		t.Fatal(err)
	}
	return acc[0][0]
}

func withClock(s *store.Store, start time.Time) *time.Time {
	clock := start
	s.SetClock(func() time.Time { return clock })
	return &clock
}

func TestExpireHeldMessagesCancelsOnlyExpiredHolds(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		clock := withClock(s, now)
		f := storetest.NewFixture(t, s, "example.com", "")
		held := func(expiry time.Time, queue bool) store.Accepted {
			return insertAt(t, s, clock, now.Add(-day), store.NewMessage{ServerID: f.Server.ID, Status: store.StatusHeld,
				Held: true, HoldExpiry: expiry, Queue: queue, QueueDomain: "dest.test"}, nil)
		}
		expired := held(now.Add(-time.Minute), true)
		expiresNow := held(now, false)
		later := held(now.Add(time.Hour), false)
		pending := insertAt(t, s, clock, now.Add(-day), store.NewMessage{ServerID: f.Server.ID}, nil)
		*clock = now

		n, err := s.ExpireHeldMessages(ctx, now)
		if err != nil || n != 2 {
			t.Fatalf("ExpireHeldMessages = %d, %v; want 2", n, err)
		}
		for _, tc := range []struct {
			name       string
			id         int64
			wantStatus string
			wantHeld   bool
			deliveries int
		}{
			{"expired a minute ago", expired.MessageID, store.StatusHoldCancelled, false, 1},
			{"expires exactly now", expiresNow.MessageID, store.StatusHoldCancelled, false, 1},
			{"expires later", later.MessageID, store.StatusHeld, true, 0},
			{"never held", pending.MessageID, store.StatusPending, false, 0},
		} {
			m, err := s.Message(ctx, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			ds, err := s.Deliveries(ctx, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if m.Status != tc.wantStatus || m.Held != tc.wantHeld || len(ds) != tc.deliveries {
				t.Errorf("%s: status=%s held=%v deliveries=%d; want %s %v %d", tc.name, m.Status, m.Held, len(ds),
					tc.wantStatus, tc.wantHeld, tc.deliveries)
			}
			if tc.deliveries == 1 && ds[0].Status != store.StatusHoldCancelled {
				t.Errorf("%s: delivery status %s", tc.name, ds[0].Status)
			}
		}
		if qs, err := s.QueuedByIDs(ctx, []int64{expired.QueuedID}); err != nil || len(qs) != 0 {
			t.Fatalf("queued row of an expired hold = %d, %v; want removed", len(qs), err)
		}
		if n, err := s.ExpireHeldMessages(ctx, now); err != nil || n != 0 {
			t.Fatalf("second run = %d, %v; want 0 (idempotent)", n, err)
		}
	})
}

func TestPruneSuppressionsDeletesEntriesPastKeepUntil(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		f := storetest.NewFixture(t, s, "example.com", "")
		for addr, keep := range map[string]time.Time{
			"gone@x.test": now.Add(-time.Hour), "edge@x.test": now, "kept@x.test": now.Add(time.Hour),
		} {
			if err := s.AddSuppressionForTest(ctx, f.Server.ID, addr, keep); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.PruneSuppressions(ctx, now)
		if err != nil || n != 2 {
			t.Fatalf("PruneSuppressions = %d, %v; want 2", n, err)
		}
		if left, err := s.SuppressionCountForTest(ctx, f.Server.ID); err != nil || left != 1 {
			t.Fatalf("left = %d, %v; want 1", left, err)
		}
	})
}

func TestReleaseStaleLocksKeepsTheWork(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		clock := withClock(s, now.Add(-3*day))
		f := storetest.NewFixture(t, s, "example.com", "")
		stale := insertAt(t, s, clock, now.Add(-3*day), store.NewMessage{ServerID: f.Server.ID, Queue: true, QueueDomain: "dest.test"}, nil)
		fresh := insertAt(t, s, clock, now.Add(-3*day), store.NewMessage{ServerID: f.Server.ID, Queue: true, QueueDomain: "dest.test"}, nil)
		// The stale row was claimed two days ago with a lock that never
		// expires in practice; the fresh one a minute ago.
		if got, err := s.ClaimQueued(ctx, []int64{stale.QueuedID}, "dead-worker", now.Add(-2*day), now.Add(365*day)); err != nil || len(got) != 1 {
			t.Fatalf("claim stale = %d, %v", len(got), err)
		}
		if got, err := s.ClaimQueued(ctx, []int64{fresh.QueuedID}, "live-worker", now.Add(-time.Minute), now.Add(time.Hour)); err != nil || len(got) != 1 {
			t.Fatalf("claim fresh = %d, %v", len(got), err)
		}
		n, err := s.ReleaseStaleLocks(ctx, now.Add(-day), now)
		if err != nil || n != 1 {
			t.Fatalf("ReleaseStaleLocks = %d, %v; want 1", n, err)
		}
		qs, err := s.QueuedByIDs(ctx, []int64{stale.QueuedID, fresh.QueuedID})
		if err != nil || len(qs) != 2 {
			t.Fatalf("QueuedByIDs = %d, %v; want both rows kept", len(qs), err)
		}
		if qs[0].LockedBy != "" || !qs[0].LockedUntil.IsZero() {
			t.Errorf("stale row still locked: %+v", qs[0])
		}
		if qs[1].LockedBy != "live-worker" {
			t.Errorf("fresh row lost its lock: %+v", qs[1])
		}
		due, err := s.DueQueued(ctx, now, 0, 10)
		if err != nil || len(due) != 1 || due[0].ID != stale.QueuedID {
			t.Fatalf("DueQueued after release = %+v, %v; want the released row", due, err)
		}
	})
}

func TestApplyRetentionByAgeAndSize(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		clock := withClock(s, now.Add(-30*day))
		f := storetest.NewFixture(t, s, "example.com", "")
		// Server 1: messages kept 10 days, bodies 5 days, no size limit.
		if err := s.SetRetentionForTest(ctx, f.Server.ID, 10, 5, 0); err != nil {
			t.Fatal(err)
		}
		msg := func(at time.Time, queue bool) store.Accepted {
			return insertAt(t, s, clock, at, store.NewMessage{ServerID: f.Server.ID, Queue: queue, QueueDomain: "dest.test"}, nil)
		}
		old := msg(now.Add(-20*day), false)
		oldQueued := msg(now.Add(-20*day), true)
		week := msg(now.Add(-7*day), false)
		recent := msg(now.Add(-day), false)

		// Server 2: keep messages and bodies by age forever, but at most
		// 1 MB of bodies: four 400 KB bodies, oldest first.
		srv2, err := s.CreateServer(ctx, "acme", store.NewServer{Name: "Bulk", Permalink: "bulk"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetRetentionForTest(ctx, srv2.ID, 0, 0, 1); err != nil {
			t.Fatal(err)
		}
		big := bytes.Repeat([]byte("x"), 400*1024)
		var bulk []store.Accepted
		for i := range 4 {
			bulk = append(bulk, insertAt(t, s, clock, now.Add(-time.Duration(10-i)*time.Hour),
				store.NewMessage{ServerID: srv2.ID, Queue: i == 1, QueueDomain: "dest.test"}, big))
		}
		*clock = now

		res, err := s.ApplyRetention(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		// Messages: only "old" goes (oldQueued is still queued). Bodies by
		// age: week's (past 5 days); old's went with it as an orphan. By
		// size: bulk[0] (bulk[1] is queued; bulk[2..3] fit in 1 MB).
		if res.Messages != 1 || res.RawByAge != 2 || res.RawBySize != 1 {
			t.Fatalf("ApplyRetention = %+v; want 1 message, 2 bodies by age, 1 by size", res)
		}
		if _, err := s.Message(ctx, old.MessageID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("old message: %v, want deleted", err)
		}
		for _, tc := range []struct {
			name    string
			id      int64
			hasBody bool
		}{
			{"old but queued", oldQueued.MessageID, true},
			{"a week old", week.MessageID, false},
			{"a day old", recent.MessageID, true},
			{"bulk oldest", bulk[0].MessageID, false},
			{"bulk queued", bulk[1].MessageID, true},
			{"bulk third", bulk[2].MessageID, true},
			{"bulk newest", bulk[3].MessageID, true},
		} {
			m, err := s.Message(ctx, tc.id)
			if err != nil {
				t.Errorf("%s: %v, want kept", tc.name, err)
				continue
			}
			if got := m.RawMessageID != 0; got != tc.hasBody {
				t.Errorf("%s: has body = %v, want %v", tc.name, got, tc.hasBody)
			}
		}
		again, err := s.ApplyRetention(ctx, now)
		if err != nil || again != (store.RetentionResult{}) {
			t.Fatalf("second run = %+v, %v; want nothing", again, err)
		}
	})
}

func TestQueuedByIDsLeavesOutMissingRows(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := storetest.NewFixture(t, s, "example.com", "")
		acc := submit(t, s, f, "a@dest.test", "b@dest.test")
		qs, err := s.QueuedByIDs(ctx, []int64{acc[1].QueuedID, 999999, acc[0].QueuedID})
		if err != nil || len(qs) != 2 || qs[0].ID != acc[0].QueuedID || qs[1].ID != acc[1].QueuedID {
			t.Fatalf("QueuedByIDs = %+v, %v; want both rows in id order", qs, err)
		}
	})
}
