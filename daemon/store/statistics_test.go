package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func TestStatisticsCountAcceptanceAndOutcomesPerPeriod(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		fx := storetest.NewFixture(t, s, "example.com", "")
		other, err := s.CreateServer(ctx, "acme", store.NewServer{Name: "Other", Permalink: "other"})
		if err != nil {
			t.Fatal(err)
		}
		acc := queueOutgoing(t, s, fx, "a@dest.test", "b@dest.test", "c@dest.test", "d@dest.test")
		if _, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("x"), Messages: []store.NewMessage{
			{ServerID: fx.Server.ID, Scope: store.ScopeIncoming, RcptTo: "in@example.com", MailFrom: "x@y.test", Held: true},
			{ServerID: other.ID, Scope: store.ScopeIncoming, RcptTo: "in@other.test", MailFrom: "x@y.test"},
		}}}); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		var ids []int64
		for _, a := range acc {
			ids = append(ids, a.QueuedID)
		}
		rows, err := s.ClaimQueued(ctx, ids, "w", now, now.Add(time.Hour))
		if err != nil || len(rows) != 4 {
			t.Fatalf("claim: %d rows, %v", len(rows), err)
		}
		lost := *rows[3]
		lost.LockedBy = "somebody-else" // its outcome is refused and must not count
		res, err := s.CommitOutcomes(ctx, []store.Outcome{
			store.Sent(rows[0], store.NewDelivery{}),
			store.SoftFail(rows[1], now.Add(time.Minute), store.NewDelivery{}),
			store.Hold(rows[2], now.Add(time.Hour), "held"),
			store.HardFail(&lost, store.NewDelivery{}),
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := (store.StatCounts{Sent: 1, SoftFail: 1, Held: 1}); res.Counts != want {
			t.Fatalf("committed counts = %+v, want %+v", res.Counts, want)
		}
		want := store.StatCounts{Incoming: 1, Outgoing: 4, Held: 2, Sent: 1, SoftFail: 1}
		for _, p := range store.Periods() {
			st, err := s.Statistics(ctx, fx.Server.ID, p, now, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(st) != 1 || st[0].StatCounts != want || !st[0].Start.Equal(p.Start(now)) {
				t.Fatalf("%s: %+v, want %+v from %s", p, st, want, p.Start(now))
			}
			all, err := s.Statistics(ctx, 0, p, now, 1)
			if err != nil {
				t.Fatal(err)
			}
			if all[0].Incoming != 2 || all[0].Outgoing != 4 {
				t.Fatalf("%s, every server: %+v", p, all[0])
			}
		}
		// The hour before is empty; the series is aligned and complete.
		st, err := s.Statistics(ctx, fx.Server.ID, store.PeriodHour, now.Add(-time.Hour), 2)
		if err != nil {
			t.Fatal(err)
		}
		if !st[0].IsZero() || st[1].StatCounts != want || !st[1].Start.Equal(now.UTC().Truncate(time.Hour)) {
			t.Fatalf("two hours: %+v", st)
		}
		o, err := s.Statistics(ctx, other.ID, store.PeriodDay, now, 1)
		if err != nil || o[0].StatCounts != (store.StatCounts{Incoming: 1}) {
			t.Fatalf("other server: %+v %v", o, err)
		}
		if _, err := s.Statistics(ctx, 0, store.PeriodHour, now, 0); err == nil {
			t.Fatal("0 periods accepted")
		}
		if _, err := s.Statistics(ctx, 0, store.Period("week"), now, 1); err == nil {
			t.Fatal("unknown period accepted")
		}
	})
}

func TestPeriodStartsAreUTCBoundaries(t *testing.T) {
	at := time.Date(2026, 3, 31, 23, 59, 30, 0, time.FixedZone("x", 3600))
	cases := []struct {
		p           store.Period
		start, next time.Time
	}{
		{store.PeriodHour, time.Date(2026, 3, 31, 22, 0, 0, 0, time.UTC), time.Date(2026, 3, 31, 23, 0, 0, 0, time.UTC)},
		{store.PeriodDay, time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
		{store.PeriodMonth, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, c := range cases {
		if got := c.p.Start(at); !got.Equal(c.start) {
			t.Errorf("%s start = %s, want %s", c.p, got, c.start)
		}
		if got := c.p.Next(c.start); !got.Equal(c.next) {
			t.Errorf("%s next = %s, want %s", c.p, got, c.next)
		}
	}
}

// One transaction touching more servers than one upsert statement takes
// still counts every server.
func TestStatisticsOfManyServersInOneTransaction(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		storetest.NewFixture(t, s, "example.com", "")
		var msgs []store.NewMessage
		var ids []int64
		for i := range 310 {
			srv, err := s.CreateServer(ctx, "acme", store.NewServer{Name: fmt.Sprintf("S%d", i), Permalink: fmt.Sprintf("s%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, srv.ID)
			msgs = append(msgs, store.NewMessage{ServerID: srv.ID, Scope: store.ScopeIncoming, RcptTo: "x@y.test", MailFrom: "a@b.test"})
		}
		if _, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("x"), Messages: msgs}}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []int64{ids[0], ids[299], ids[300], ids[309]} {
			st, err := s.Statistics(ctx, id, store.PeriodDay, time.Now(), 1)
			if err != nil || st[0].Incoming != 1 {
				t.Fatalf("server %d: %+v %v", id, st, err)
			}
		}
		all, err := s.Statistics(ctx, 0, store.PeriodMonth, time.Now(), 1)
		if err != nil || all[0].Incoming != 310 {
			t.Fatalf("all servers: %+v %v", all, err)
		}
	})
}
