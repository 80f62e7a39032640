package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

// pgCounted is a migrated PostgreSQL store private to a test that reaches
// its database through a pgCounter, on one pooled connection (so every
// statement, set-up included, warms the same statement cache), with an
// admin connection to the same database that bypasses the proxy.
type pgCounted struct {
	s     *store.Store
	admin *sql.DB
	rt    *pgCounter
}

func openPGCounted(t *testing.T, now time.Time) pgCounted {
	t.Helper()
	ctx := context.Background()
	o := storetest.PostgresOptions(t)
	rt := startPGCounter(t, o.URL)
	admin, err := sql.Open("pgx", o.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	o.URL, o.MaxOpenConns = rt.URL(o.URL), 1
	s, err := store.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	s.SetClock(func() time.Time { return now })
	if _, err := s.Migrate(ctx, false); err != nil {
		t.Fatal(err)
	}
	return pgCounted{s: s, admin: admin, rt: rt}
}

// dump returns the rows of the tables an outcome writes, as JSON texts in
// a fixed order, without the columns that differ between two databases
// given the same input (random tokens and uuids, and the ids of rows whose
// insert order within one transaction is not part of the contract).
func (p pgCounted) dump(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for table, q := range map[string]string{
		"messages":          `SELECT to_jsonb(t) - 'token' FROM messages t`,
		"deliveries":        `SELECT to_jsonb(t) - 'id' FROM deliveries t`,
		"queued_messages":   `SELECT to_jsonb(t) FROM queued_messages t`,
		"webhook_requests":  `SELECT to_jsonb(t) - 'id' - 'uuid' FROM webhook_requests t`,
		"server_statistics": `SELECT to_jsonb(t) FROM server_statistics t`,
		"suppressions":      `SELECT to_jsonb(t) - 'id' FROM suppressions t`,
		"spam_checks":       `SELECT to_jsonb(t) - 'id' FROM spam_checks t`,
		"servers":           `SELECT jsonb_build_array(id, send_limit_approaching_at, send_limit_exceeded_at) FROM servers`,
		"http_endpoints":    `SELECT jsonb_build_array(id, last_used_at) FROM http_endpoints`,
	} {
		rows, err := p.admin.Query(q)
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		var list []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			list = append(list, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		slices.Sort(list)
		out[table] = list
	}
	return out
}

// The pipelined commit (two round trips) records exactly the rows the
// per-outcome statements record for the same mixed batch: sent, soft fail
// kept for a retry, hard fail with a suppression, holds, a retry, a drop,
// a lost lock and a queued row already gone (neither writes anything),
// webhook requests, a suppression removed, send limit crossings, an
// inspection and an endpoint used.
func TestPipelinedOutcomesRecordWhatOneByOneRecords(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	type side struct {
		db  pgCounted
		res store.Committed
		n   int64 // round trips of the commit
	}
	run := func(commit func(*store.Store, []store.Outcome) (store.Committed, error)) side {
		db := openPGCounted(t, now)
		s := db.s
		fx := storetest.NewFixture(t, s, "example.com", "")
		ep, err := s.CreateEndpoint(ctx, fx.Server.ID, store.NewEndpoint{Type: store.EndpointHTTP, Name: "app", URL: "https://app.test/in",
			Format: store.FormatRawMessage})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddSuppressions(ctx, []store.NewSuppression{{ServerID: fx.Server.ID, Address: "r10@dest.test", Reason: "old",
			KeepUntil: now.Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		var rcpts []string
		for i := range 12 {
			rcpts = append(rcpts, "r"+strconv.Itoa(i)+"@dest.test")
		}
		acc := queueOutgoing(t, s, fx, rcpts...)
		ids := make([]int64, len(acc))
		for i, a := range acc {
			ids[i] = a.QueuedID
		}
		rows, err := s.ClaimQueued(ctx, ids, "w", now, now.Add(time.Hour))
		if err != nil || len(rows) != len(ids) {
			t.Fatalf("claim: %d rows, %v", len(rows), err)
		}
		if _, err := db.admin.Exec(`DELETE FROM queued_messages WHERE id = $1`, rows[7].ID); err != nil {
			t.Fatal(err)
		}
		hook := func(event string, msg int64) []store.NewWebhookRequest {
			return []store.NewWebhookRequest{{ServerID: fx.Server.ID, MessageID: msg, URL: "https://h.test/", Event: event,
				Payload: `{"event":"` + event + `"}`}}
		}
		limit := func(volume int64) *store.SendLimit {
			return &store.SendLimit{ServerID: fx.Server.ID, Volume: volume, Limit: 10,
				Approaching: hook("SendLimitApproaching", 0), Exceeded: hook("SendLimitExceeded", 0)}
		}
		lost := *rows[6]
		lost.LockedBy = "someone-else"
		outs := []store.Outcome{
			store.Sent(rows[0], store.NewDelivery{Output: "250 ok", LogID: "L0", Time: 0.5, SentWithSSL: true}).With(store.Effects{
				Webhooks: hook("MessageSent", rows[0].MessageID), Used: []store.EndpointRef{{Type: store.EndpointHTTP, ID: ep.ID}}}),
			store.Sent(rows[1], store.NewDelivery{Output: "250 ok"}),
			store.SoftFail(rows[2], now.Add(time.Hour), store.NewDelivery{Output: "451 later"}).With(store.Effects{
				Webhooks: hook("MessageDelayed", rows[2].MessageID)}),
			store.HardFail(rows[3], store.NewDelivery{Details: "Rejected.", Output: "550 no"}).With(store.Effects{
				Suppress: []store.NewSuppression{{ServerID: fx.Server.ID, Address: "R3@dest.test", Reason: "hard fail", KeepUntil: now.Add(time.Hour)}},
				Webhooks: hook("MessageDeliveryFailed", rows[3].MessageID)}),
			store.Hold(rows[4], now.Add(24*time.Hour), "Held by a rule."),
			store.HoldUntil(rows[5], now.Add(24*time.Hour), now.Add(time.Hour), "Send limit."),
			store.Sent(&lost, store.NewDelivery{Output: "250 ok"}).With(store.Effects{
				Suppress: []store.NewSuppression{{ServerID: fx.Server.ID, Address: "r6@dest.test", Reason: "x", KeepUntil: now.Add(time.Hour)}},
				Webhooks: hook("MessageSent", rows[6].MessageID), SendLimit: limit(10)}),
			store.Sent(rows[7], store.NewDelivery{Output: "250 ok"}).With(store.Effects{Webhooks: hook("MessageSent", rows[7].MessageID)}),
			store.Retry(rows[8], now.Add(time.Minute), "internal error"),
			store.Drop(rows[9]),
			store.Sent(rows[10], store.NewDelivery{Output: "250 ok"}).With(store.Effects{
				Unsuppress: []store.Unsuppression{{ServerID: fx.Server.ID, Address: "R10@dest.test"}}, SendLimit: limit(9),
				Webhooks: hook("MessageSent", rows[10].MessageID)}),
			store.Sent(rows[11], store.NewDelivery{Output: "250 ok"}).With(store.Effects{SendLimit: limit(10),
				Inspection: &store.NewInspection{SpamScore: 1.5, Skipped: "no virus scanner",
					Checks: []store.SpamCheck{{Code: "A", Score: 1}, {Code: "B", Score: 0.5, Description: "b"}}}}),
		}
		before := db.rt.RoundTrips()
		res, err := commit(s, outs)
		if err != nil {
			t.Fatal(err)
		}
		return side{db: db, res: res, n: db.rt.RoundTrips() - before}
	}
	a := run(func(s *store.Store, outs []store.Outcome) (store.Committed, error) {
		return s.CommitOutcomes(ctx, outs)
	})
	b := run(func(s *store.Store, outs []store.Outcome) (store.Committed, error) {
		return s.CommitOutcomesEachForTest(ctx, outs)
	})

	want := []bool{true, true, true, true, true, true, false, false, true, true, true, true}
	if !slices.Equal(a.res.Applied, want) || !slices.Equal(b.res.Applied, want) {
		t.Fatalf("applied: pipelined %v, one by one %v, want %v", a.res.Applied, b.res.Applied, want)
	}
	for i, r := range a.res.Fallback {
		if r != "" || a.res.Failed[i] != nil {
			t.Fatalf("outcome %d: fallback %q, failed %v", i, r, a.res.Failed[i])
		}
	}
	// MessageSent, MessageDelayed, MessageDeliveryFailed, MessageSent and
	// one send limit event per crossing.
	if len(a.res.Webhooks) != 6 || len(b.res.Webhooks) != 6 || a.res.Counts != b.res.Counts {
		t.Fatalf("pipelined: %d webhooks, counts %+v; one by one: %d, %+v", len(a.res.Webhooks), a.res.Counts, len(b.res.Webhooks), b.res.Counts)
	}
	// BEGIN and the statement, the effects and COMMIT; each pipeline
	// prepares its statements first on a fresh connection.
	if a.n > 4 {
		t.Errorf("the pipelined commit took %d round trips on a fresh connection, want at most 4", a.n)
	}
	t.Logf("round trips on a fresh connection: pipelined %d, one by one %d", a.n, b.n)
	da, db := a.db.dump(t), b.db.dump(t)
	for table, rows := range db {
		if !slices.Equal(da[table], rows) {
			t.Errorf("%s differ:\npipelined  %q\none by one %q", table, da[table], rows)
		}
	}
	if len(da["deliveries"]) != 8 || len(da["spam_checks"]) != 2 || len(da["suppressions"]) != 1 {
		t.Errorf("pipelined wrote %d deliveries, %d spam checks, %d suppressions; want 8, 2, 1",
			len(da["deliveries"]), len(da["spam_checks"]), len(da["suppressions"]))
	}
}

// A batch whose pipeline fails, in its first round trip or its second,
// records nothing: no message, delivery, queued row, webhook request or
// statistics change; and the connection goes back to the pool outside any
// transaction, ready for the next commit.
func TestPipelinedOutcomesFailureRecordsNothing(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	db := openPGCounted(t, now)
	s := db.s
	fx := storetest.NewFixture(t, s, "example.com", "")
	rows := claimAll(t, s, fx, "w", "a@dest.test", "b@dest.test")
	hook := []store.NewWebhookRequest{{ServerID: fx.Server.ID, URL: "https://h.test/", Event: "MessageSent", Payload: "{}"}}
	const noServer = 987654321
	before := db.dump(t)
	for name, outs := range map[string][]store.Outcome{
		// The database refuses a NUL in text: the first statement fails.
		"first round trip": {
			store.Sent(rows[0], store.NewDelivery{Output: "250 ok"}).With(store.Effects{Webhooks: hook}),
			store.Sent(rows[1], store.NewDelivery{Output: "250 ok", LogID: "bad\x00id"}),
		},
		// A suppression of a server that does not exist breaks a foreign
		// key in the second pipeline, after the first one applied both.
		"second round trip": {
			store.Sent(rows[0], store.NewDelivery{Output: "250 ok"}).With(store.Effects{Webhooks: hook}),
			store.Sent(rows[1], store.NewDelivery{Output: "250 ok"}).With(store.Effects{
				Suppress: []store.NewSuppression{{ServerID: noServer, Address: "x@dest.test", KeepUntil: now.Add(time.Hour)}}}),
		},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := s.CommitPipelinedForTest(ctx, outs); err == nil {
				t.Fatal("the commit succeeded")
			}
			after := db.dump(t)
			for table, rows := range before {
				if !slices.Equal(after[table], rows) {
					t.Errorf("%s changed:\nbefore %q\nafter  %q", table, rows, after[table])
				}
			}
			var open int
			if err := db.admin.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
				AND state LIKE 'idle in transaction%'`).Scan(&open); err != nil || open != 0 {
				t.Fatalf("%d connections left in a transaction (%v)", open, err)
			}
		})
	}
	res, err := s.CommitOutcomes(ctx, []store.Outcome{
		store.Sent(rows[0], store.NewDelivery{Output: "250 ok"}).With(store.Effects{Webhooks: hook}),
		store.Sent(rows[1], store.NewDelivery{Output: "250 ok"}),
	})
	if err != nil || !res.Applied[0] || !res.Applied[1] || res.Fallback[0] != "" || len(res.Webhooks) != 1 {
		t.Fatalf("commit after the failures: %+v, %v", res, err)
	}
}

// The last round trip, which the caller's context does not cut short, is
// bounded all the same: a statement of it waiting on a lock another session
// holds (here the statistics upsert behind a table lock) ends the call with
// an error, and nothing is recorded while the lock is held. The outcome is
// then ambiguous, as any commit whose answer is lost: the pipeline's COMMIT
// is already with the server, whose backend may go on to commit once the
// lock is gone. Either way the retry that follows (the worker's, after a
// failed commit) records each message exactly once: the queued rows are
// gone, or still locked by their owner.
func TestPipelinedOutcomesLockWaitIsBounded(t *testing.T) {
	ctx := context.Background()
	db := openPGCounted(t, time.Now())
	s := db.s
	fx := storetest.NewFixture(t, s, "example.com", "")
	rows := claimAll(t, s, fx, "w", "a@dest.test", "b@dest.test")
	outs := []store.Outcome{
		store.Sent(rows[0], store.NewDelivery{Output: "250 ok"}),
		store.Sent(rows[1], store.NewDelivery{Output: "250 ok"}),
	}
	before := db.dump(t)
	lock, err := db.admin.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	if _, err := lock.Exec(`LOCK TABLE server_statistics IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	store.SetPipelineCommitLimitForTest(t, 500*time.Millisecond)
	done := make(chan error, 1)
	go func() {
		_, err := s.CommitPipelinedForTest(ctx, outs)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the commit succeeded behind the lock")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the commit still waits on the lock 20 s later")
	}
	during := db.dump(t)
	for table, rows := range before {
		if !slices.Equal(during[table], rows) {
			t.Errorf("%s changed while the lock was held:\nbefore %q\nafter  %q", table, rows, during[table])
		}
	}
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	res, err := s.CommitOutcomes(ctx, outs)
	if err != nil || res.Applied[0] != res.Applied[1] || res.Fallback[0] != "" || res.Failed[0] != nil {
		t.Fatalf("commit after the lock: %+v, %v", res, err)
	}
	var deliveries, sent, queued int
	if err := db.admin.QueryRow(`SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM messages WHERE status = 'Sent'),
		(SELECT count(*) FROM queued_messages)`).Scan(&deliveries, &sent, &queued); err != nil {
		t.Fatal(err)
	}
	if deliveries != 2 || sent != 2 || queued != 0 {
		t.Fatalf("after the retry (applied %v): %d deliveries, %d messages Sent, %d queued rows; want 2, 2, 0",
			res.Applied[0], deliveries, sent, queued)
	}
}

// A batch of 20 Sent outcomes commits in two round trips on a connection
// that has prepared its statements, with or without a MessageSent webhook
// request each: BEGIN with the statement that applies the outcomes, then
// the webhook requests, the statistics and COMMIT.
func TestPipelinedOutcomesRoundTrips(t *testing.T) {
	for _, withHooks := range []bool{false, true} {
		t.Run(fmt.Sprintf("webhooks=%v", withHooks), func(t *testing.T) {
			ctx := context.Background()
			db := openPGCounted(t, time.Now())
			s := db.s
			fx := storetest.NewFixture(t, s, "example.com", "")
			batch := func() []store.Outcome {
				var rcpts []string
				for i := range hotBatch {
					rcpts = append(rcpts, fmt.Sprintf("r%d@dest.test", i))
				}
				var outs []store.Outcome
				for _, q := range claimAll(t, s, fx, "w", rcpts...) {
					o := store.Sent(q, store.NewDelivery{Output: "250 ok", LogID: "L"})
					if withHooks {
						o = o.With(store.Effects{Webhooks: []store.NewWebhookRequest{{ServerID: fx.Server.ID, MessageID: q.MessageID,
							URL: "https://h.test/", Event: "MessageSent", Payload: "{}"}}})
					}
					outs = append(outs, o)
				}
				return outs
			}
			hooks := 0
			if withHooks {
				hooks = hotBatch
			}
			for _, step := range []string{"fresh connection", "prepared"} {
				outs := batch()
				n := db.rt.RoundTrips()
				res, err := s.CommitOutcomes(ctx, outs)
				n = db.rt.RoundTrips() - n
				if err != nil || len(res.Webhooks) != hooks || res.Counts.Sent != hotBatch {
					t.Fatalf("%s: %+v, %v", step, res, err)
				}
				t.Logf("%s: %d round trips", step, n)
				if step == "prepared" && n != 2 {
					t.Errorf("%d round trips for %d Sent outcomes, want 2", n, hotBatch)
				}
			}
		})
	}
}
