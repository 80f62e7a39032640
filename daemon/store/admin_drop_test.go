package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func TestDropQueuedByIDDomainServerAndHeld(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		acc := queueOutgoing(t, s, fx, "a@dest.test", "b@dest.test", "c@dest.test", "d@dest.test", "e@dest.test")
		var other []store.NewMessage
		for _, r := range []string{"x@other.test", "y@other.test"} {
			other = append(other, store.NewMessage{ServerID: fx.Server.ID, Scope: store.ScopeOutgoing, RcptTo: r,
				MailFrom: "a@example.com", Queue: true, QueueDomain: "Other.test"})
		}
		oacc, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("x"), Messages: other}})
		if err != nil {
			t.Fatal(err)
		}
		state := func(id int64) (string, bool) {
			t.Helper()
			m, err := s.Message(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			_, qerr := s.QueuedForMessage(ctx, id)
			if qerr != nil && !errors.Is(qerr, store.ErrNotFound) {
				t.Fatal(qerr)
			}
			return m.Status, qerr == nil
		}
		// A worker holds acc[1]: it is reported, not dropped.
		now := time.Now()
		if _, err := s.ClaimQueued(ctx, []int64{acc[1].QueuedID}, "w", now, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.HoldMessage(ctx, acc[4].MessageID); err != nil {
			t.Fatal(err)
		}

		if _, err := s.DropQueued(ctx, store.DropFilter{}, 10); err == nil {
			t.Fatal("an empty filter dropped")
		}
		if _, err := s.DropQueued(ctx, store.DropFilter{Held: true, Domain: "dest.test"}, 10); err == nil {
			t.Fatal("held with a domain accepted")
		}
		cands, more, err := s.DropCandidates(ctx, store.DropFilter{Domain: "DEST.test"}, 2)
		if err != nil || len(cands) != 2 || !more || cands[0].QueuedID != acc[0].QueuedID || cands[0].RcptTo != "a@dest.test" {
			t.Fatalf("candidates = %+v more=%v %v", cands, more, err)
		}
		res, err := s.DropQueued(ctx, store.DropFilter{QueuedIDs: []int64{acc[0].QueuedID, acc[1].QueuedID}}, 100)
		if err != nil || len(res.Dropped) != 1 || res.Dropped[0].MessageID != acc[0].MessageID || len(res.Locked) != 1 || res.More {
			t.Fatalf("by id: %+v %v", res, err)
		}
		if st, queued := state(acc[0].MessageID); st != store.StatusHoldCancelled || queued {
			t.Fatalf("dropped message: %s queued=%v", st, queued)
		}
		if st, queued := state(acc[1].MessageID); st == store.StatusHoldCancelled || !queued {
			t.Fatalf("locked message: %s queued=%v", st, queued)
		}
		ds, err := s.Deliveries(ctx, acc[0].MessageID)
		if err != nil || len(ds) != 1 || ds[0].Status != store.StatusHoldCancelled || ds[0].Details != store.DropDetails {
			t.Fatalf("deliveries = %+v, %v", ds, err)
		}
		// By domain, with a limit: the first page, then the rest.
		res, err = s.DropQueued(ctx, store.DropFilter{Domain: "other.test", ServerID: fx.Server.ID}, 1)
		if err != nil || len(res.Dropped) != 1 || !res.More {
			t.Fatalf("by domain, limit 1: %+v %v", res, err)
		}
		res, err = s.DropQueued(ctx, store.DropFilter{Domain: "other.test"}, 10)
		if err != nil || len(res.Dropped) != 1 || res.Dropped[0].MessageID != oacc[0][1].MessageID || res.More {
			t.Fatalf("by domain: %+v %v", res, err)
		}
		// Held messages: acc[4] only; another server has none.
		res, err = s.DropQueued(ctx, store.DropFilter{Held: true, ServerID: fx.Server.ID + 99}, 10)
		if err != nil || len(res.Dropped) != 0 {
			t.Fatalf("held on another server: %+v %v", res, err)
		}
		res, err = s.DropQueued(ctx, store.DropFilter{Held: true}, 10)
		if err != nil || len(res.Dropped) != 1 || res.Dropped[0].MessageID != acc[4].MessageID || res.Dropped[0].QueuedID != 0 {
			t.Fatalf("held: %+v %v", res, err)
		}
		if st, _ := state(acc[4].MessageID); st != store.StatusHoldCancelled {
			t.Fatalf("held message after drop: %s", st)
		}
		// By server: what is left and unlocked (acc[2], acc[3]).
		res, err = s.DropQueued(ctx, store.DropFilter{ServerID: fx.Server.ID}, 100)
		if err != nil || len(res.Dropped) != 2 || len(res.Locked) != 1 {
			t.Fatalf("by server: %+v %v", res, err)
		}
	})
}
