package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func msgIDs(ms []*store.Message) []int64 {
	var out []int64
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestSearchMessagesFiltersAndPagesByKeyset(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		acc := queueOutgoing(t, s, fx, "a@dest.test", "b@dest.test", "c@dest.test", "d@other.test", "e@dest.test")
		finish(t, s, acc[1], store.StatusSent, false)
		finish(t, s, acc[2], store.StatusHeld, true)
		all := []int64{acc[4].MessageID, acc[3].MessageID, acc[2].MessageID, acc[1].MessageID, acc[0].MessageID}
		for _, tc := range []struct {
			name string
			f    store.MessageFilter
			want []int64
		}{
			{"everything newest first", store.MessageFilter{}, all},
			{"server", store.MessageFilter{ServerID: fx.Server.ID}, all},
			{"other server", store.MessageFilter{ServerID: fx.Server.ID + 1000}, nil},
			{"status", store.MessageFilter{Status: store.StatusSent}, []int64{acc[1].MessageID}},
			{"held preset", store.MessageFilter{Held: true}, []int64{acc[2].MessageID}},
			{"to", store.MessageFilter{To: "d@other.test"}, []int64{acc[3].MessageID}},
			{"from", store.MessageFilter{From: "nobody@example.com"}, nil},
			{"subject substring with LIKE metacharacters", store.MessageFilter{Subject: "%"}, nil},
			{"scope", store.MessageFilter{Scope: store.ScopeIncoming}, nil},
			{"future range", store.MessageFilter{Since: time.Now().Add(time.Hour)}, nil},
			{"past range", store.MessageFilter{Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour)}, all},
			{"cursor", store.MessageFilter{Before: acc[2].MessageID}, []int64{acc[1].MessageID, acc[0].MessageID}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p, err := s.SearchMessages(ctx, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				if g := msgIDs(p.Messages); !slices.Equal(g, tc.want) {
					t.Fatalf("ids = %v, want %v", g, tc.want)
				}
				if p.Next != 0 {
					t.Fatalf("next = %d on the last page", p.Next)
				}
			})
		}
		// Paging two at a time walks every message once, then stops.
		var seen []int64
		f := store.MessageFilter{Limit: 2}
		for range 10 {
			p, err := s.SearchMessages(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			seen = append(seen, msgIDs(p.Messages)...)
			if p.Next == 0 {
				break
			}
			f.Before = p.Next
		}
		if !slices.Equal(seen, all) {
			t.Fatalf("paged ids = %v, want %v", seen, all)
		}
		if _, err := s.SearchMessages(ctx, store.MessageFilter{Subject: strings.Repeat("x", store.MaxFilterText+1)}); err == nil {
			t.Fatal("an over-long filter was accepted")
		}
		if _, err := s.SearchMessages(ctx, store.MessageFilter{Limit: store.MaxMessagePage + 1}); err == nil {
			t.Fatal("an over-large page was accepted")
		}
	})
}

func TestMessageActions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		acc := queueOutgoing(t, s, fx, "a@dest.test", "b@dest.test", "c@dest.test", "d@dest.test")
		status := func(id int64) (string, bool, bool) {
			t.Helper()
			m, err := s.Message(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			_, qerr := s.QueuedForMessage(ctx, id)
			if qerr != nil && !errors.Is(qerr, store.ErrNotFound) {
				t.Fatal(qerr)
			}
			return m.Status, m.Held, qerr == nil
		}

		// Hold takes a queued message out of the queue; release puts it back.
		if err := s.HoldMessage(ctx, acc[0].MessageID); err != nil {
			t.Fatal(err)
		}
		if st, held, queued := status(acc[0].MessageID); st != store.StatusHeld || !held || queued {
			t.Fatalf("after hold: %s held=%v queued=%v", st, held, queued)
		}
		if err := s.HoldMessage(ctx, acc[0].MessageID); !errors.Is(err, store.ErrNotQueued) {
			t.Fatalf("holding a held message: %v, want ErrNotQueued", err)
		}
		if _, err := s.RetryNow(ctx, acc[0].MessageID); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("retrying a held message: %v, want ErrConflict", err)
		}
		// Cancel ends a held message for good.
		if err := s.CancelMessage(ctx, acc[0].MessageID); err != nil {
			t.Fatal(err)
		}
		if st, held, queued := status(acc[0].MessageID); st != store.StatusHoldCancelled || held || queued {
			t.Fatalf("after cancel: %s held=%v queued=%v", st, held, queued)
		}
		if err := s.CancelMessage(ctx, acc[0].MessageID); !errors.Is(err, store.ErrNotQueued) {
			t.Fatalf("cancelling twice: %v, want ErrNotQueued", err)
		}
		ds, err := s.Deliveries(ctx, acc[0].MessageID)
		if err != nil || len(ds) != 2 {
			t.Fatalf("deliveries after hold and cancel = %d, %v; want 2", len(ds), err)
		}

		// A message a worker is delivering cannot be acted on.
		now := time.Now()
		if _, err := s.ClaimQueued(ctx, []int64{acc[1].QueuedID}, "w", now.Add(time.Second), now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		for name, act := range map[string]func() error{
			"hold":   func() error { return s.HoldMessage(ctx, acc[1].MessageID) },
			"cancel": func() error { return s.CancelMessage(ctx, acc[1].MessageID) },
			"delete": func() error { return s.DeleteMessage(ctx, acc[1].MessageID) },
			"retry":  func() error { _, err := s.RetryNow(ctx, acc[1].MessageID); return err },
		} {
			if err := act(); !errors.Is(err, store.ErrLocked) {
				t.Fatalf("%s of a locked message: %v, want ErrLocked", name, err)
			}
		}

		// Retry makes a queued row due now, and requeues a failed message.
		q, err := s.RetryNow(ctx, acc[2].MessageID)
		if err != nil || q.ID != acc[2].QueuedID || q.RetryAfter.After(time.Now()) {
			t.Fatalf("retry queued: %+v, %v", q, err)
		}
		finish(t, s, acc[3], store.StatusHardFail, false)
		q, err = s.RetryNow(ctx, acc[3].MessageID)
		if err != nil || q.Domain != "dest.test" {
			t.Fatalf("retry failed message: %+v, %v", q, err)
		}
		if st, _, queued := status(acc[3].MessageID); st != store.StatusPending || !queued {
			t.Fatalf("after retry of a failed message: %s queued=%v", st, queued)
		}
		if _, err := s.RetryNow(ctx, acc[0].MessageID); !errors.Is(err, store.ErrNotRetryable) {
			t.Fatalf("retry of a cancelled message: %v, want ErrNotRetryable", err)
		}

		// Delete removes the message and everything hanging off it.
		if err := s.DeleteMessage(ctx, acc[3].MessageID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Message(ctx, acc[3].MessageID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted message still found: %v", err)
		}
		if err := s.DeleteMessage(ctx, acc[3].MessageID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleting twice: %v, want ErrNotFound", err)
		}
	})
}
