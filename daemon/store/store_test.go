package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/postalgo/postal/daemon/store"
	"github.com/postalgo/postal/daemon/store/storetest"
)

func TestMigrateIsIdempotentAndReportsStatus(t *testing.T) {
	for _, b := range []struct {
		name string
		opts func(testing.TB) store.Options
	}{{"sqlite", storetest.SQLiteOptions}, {"postgres", storetest.PostgresOptions}} {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := store.Open(ctx, b.opts(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			st, err := s.SchemaStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			latest := len(store.Migrations())
			if st.Current != 0 || st.Latest != latest || len(st.Pending) != latest {
				t.Fatalf("fresh status = %+v, want 0 of %d pending all", st, latest)
			}
			if err := s.CheckSchema(ctx); !errors.Is(err, store.ErrSchemaBehind) {
				t.Fatalf("CheckSchema on empty db = %v, want ErrSchemaBehind", err)
			}
			dry, err := s.Migrate(ctx, true)
			if err != nil || !dry.DryRun || len(dry.Applied) != latest {
				t.Fatalf("dry run = %+v, %v", dry, err)
			}
			if st, _ := s.SchemaStatus(ctx); st.Current != 0 {
				t.Fatalf("dry run changed the schema to %d", st.Current)
			}
			res, err := s.Migrate(ctx, false)
			if err != nil {
				t.Fatal(err)
			}
			if res.From != 0 || res.To != latest || len(res.Applied) != latest {
				t.Fatalf("first migrate = %+v", res)
			}
			again, err := s.Migrate(ctx, false)
			if err != nil || len(again.Applied) != 0 || again.From != latest {
				t.Fatalf("second migrate = %+v, %v; want nothing applied", again, err)
			}
			if err := s.CheckSchema(ctx); err != nil {
				t.Fatalf("CheckSchema after migrate: %v", err)
			}
		})
	}
}

// Two upgraders racing on the same database both succeed and every
// migration is applied exactly once.
func TestConcurrentMigrateAppliesOnce(t *testing.T) {
	for _, b := range []struct {
		name string
		opts func(testing.TB) store.Options
	}{{"sqlite", storetest.SQLiteOptions}, {"postgres", storetest.PostgresOptions}} {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			o := b.opts(t)
			const n = 4
			results := make([]store.MigrateResult, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				s, err := store.Open(ctx, o)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i], errs[i] = s.Migrate(ctx, false)
				}()
			}
			wg.Wait()
			total := 0
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("upgrader %d: %v", i, errs[i])
				}
				total += len(results[i].Applied)
			}
			if want := len(store.Migrations()); total != want {
				t.Fatalf("migrations applied %d times in all, want %d", total, want)
			}
		})
	}
}

func TestModelCreateAndLookup(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := storetest.NewFixture(t, s, "Example.COM.", "")
		if f.Domain.Name != "example.com" || !f.Domain.Verified() {
			t.Fatalf("domain = %q verified=%v, want normalised and verified", f.Domain.Name, f.Domain.Verified())
		}
		if _, err := s.CreateOrganization(ctx, "Again", "acme"); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate org: %v, want ErrConflict", err)
		}
		if _, err := s.CreateDomain(ctx, f.Server.ID, store.NewDomain{Name: "example.com"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate domain: %v, want ErrConflict", err)
		}
		srv, err := s.Server(ctx, "acme/mail")
		if err != nil || srv.ID != f.Server.ID || srv.Mode != store.ModeLive || srv.Path() != "acme/mail" {
			t.Fatalf("Server(acme/mail) = %+v, %v", srv, err)
		}
		if _, err := s.Server(ctx, "acme/nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown server: %v", err)
		}
		c, err := s.CredentialByKey(ctx, store.CredentialSMTP, f.SMTPKey)
		if err != nil || c.ID != f.Credential.ID {
			t.Fatalf("CredentialByKey = %+v, %v", c, err)
		}
		if _, err := s.CredentialByKey(ctx, store.CredentialSMTP, f.SMTPKey+"x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("wrong key: %v, want ErrNotFound", err)
		}
		if _, err := s.CredentialByKey(ctx, store.CredentialAPI, f.SMTPKey); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SMTP key used as API key: %v, want ErrNotFound", err)
		}
		doms, err := s.DomainsNamed(ctx, "EXAMPLE.com")
		if err != nil || len(doms) != 1 {
			t.Fatalf("DomainsNamed = %d, %v", len(doms), err)
		}
		if err := s.DeleteOrganization(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Server(ctx, "acme/mail"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("server survived its organisation: %v", err)
		}
	})
}

func submit(t *testing.T, s *store.Store, f storetest.Fixture, rcpts ...string) []store.Accepted {
	t.Helper()
	var msgs []store.NewMessage
	for _, r := range rcpts {
		msgs = append(msgs, store.NewMessage{ServerID: f.Server.ID, Scope: store.ScopeOutgoing, RcptTo: r,
			MailFrom: "a@example.com", Subject: "hi", Queue: true, QueueDomain: "dest.test"})
	}
	acc, err := s.InsertSubmissions(context.Background(), []store.Submission{{Raw: []byte("Subject: hi\r\n\r\nbody\r\n"), Messages: msgs}})
	if err != nil {
		t.Fatal(err)
	}
	return acc[0]
}

func TestSubmissionClaimOutcome(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := storetest.NewFixture(t, s, "example.com", "")
		acc := submit(t, s, f, "x@dest.test", "y@dest.test", "z@dest.test")
		if len(acc) != 3 || acc[0].QueuedID == 0 || acc[0].Token == "" {
			t.Fatalf("accepted = %+v", acc)
		}
		m, err := s.Message(ctx, acc[1].MessageID)
		if err != nil || m.RcptTo != "y@dest.test" || m.Status != store.StatusPending || m.RawMessageID == 0 {
			t.Fatalf("message = %+v, %v", m, err)
		}
		raw, err := s.RawMessage(ctx, m.RawMessageID)
		if err != nil || string(raw) != "Subject: hi\r\n\r\nbody\r\n" {
			t.Fatalf("raw = %q, %v", raw, err)
		}
		now := time.Now()
		until := now.Add(time.Minute)
		got, err := s.ClaimQueued(ctx, []int64{acc[0].QueuedID}, "w1", now, until)
		if err != nil || len(got) != 1 {
			t.Fatalf("claim = %d, %v", len(got), err)
		}
		// A second claimer cannot take a locked row.
		if again, err := s.ClaimQueued(ctx, []int64{acc[0].QueuedID}, "w2", now, until); err != nil || len(again) != 0 {
			t.Fatalf("double claim = %d, %v; want 0", len(again), err)
		}
		// Batching: the other rows for the same domain.
		batch, err := s.ClaimQueuedForDomain(ctx, store.ScopeOutgoing, "DEST.test", "w1", now, until, 10)
		if err != nil || len(batch) != 2 {
			t.Fatalf("batch claim = %d, %v; want 2", len(batch), err)
		}
		// w2 cannot record an outcome for w1's row; w1 can.
		row0 := &store.QueuedMessage{ID: acc[0].QueuedID, MessageID: acc[0].MessageID, LockedBy: "w2"}
		sent := store.Sent(row0, store.NewDelivery{Output: "250 ok"})
		ok, err := s.RecordOutcomes(ctx, []store.Outcome{sent})
		if err != nil || ok[0] {
			t.Fatalf("foreign outcome applied=%v err=%v", ok, err)
		}
		row0.LockedBy = "w1"
		sent = store.Sent(row0, store.NewDelivery{Output: "250 ok"})
		row1 := &store.QueuedMessage{ID: acc[1].QueuedID, MessageID: acc[1].MessageID, LockedBy: "w1"}
		retry := store.SoftFail(row1, now.Add(5*time.Minute), store.NewDelivery{})
		ok, err = s.RecordOutcomes(ctx, []store.Outcome{sent, retry})
		if err != nil || !ok[0] || !ok[1] {
			t.Fatalf("outcomes applied=%v err=%v", ok, err)
		}
		m, _ = s.Message(ctx, acc[0].MessageID)
		ds, _ := s.Deliveries(ctx, acc[0].MessageID)
		if m.Status != store.StatusSent || len(ds) != 1 || ds[0].Output != "250 ok" {
			t.Fatalf("after sent: status %s, deliveries %+v", m.Status, ds)
		}
		// The retried row is not due now, is due later, with one attempt.
		if due, _ := s.DueQueued(ctx, now, 0, 10); len(due) != 0 {
			t.Fatalf("due now = %d rows, want 0 (third is still locked, second not due)", len(due))
		}
		due, err := s.DueQueued(ctx, now.Add(6*time.Minute), 0, 10)
		if err != nil || len(due) != 2 {
			t.Fatalf("due later = %d, %v; want the retry and the expired lock", len(due), err)
		}
		if due[0].ID != acc[1].QueuedID || due[0].Attempts != 1 {
			t.Fatalf("retry row = %+v", due[0])
		}
		// Dead letter: the third message hard-fails with the reason.
		if err := s.FailQueued(ctx, acc[2].QueuedID, "gave up after 10 deliveries"); err != nil {
			t.Fatal(err)
		}
		m, _ = s.Message(ctx, acc[2].MessageID)
		if m.Status != store.StatusHardFail || m.Details != "gave up after 10 deliveries" {
			t.Fatalf("dead-lettered message = %+v", m)
		}
		c, err := s.CountQueued(ctx, now)
		if err != nil || c.Total != 1 || c.Due != 0 {
			t.Fatalf("counts = %+v, %v", c, err)
		}
	})
}

// Many concurrent claimers of the same rows: every row is taken exactly once.
func TestClaimIsExclusiveUnderConcurrency(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := storetest.NewFixture(t, s, "example.com", "")
		var rcpts []string
		for i := range 50 {
			rcpts = append(rcpts, string(rune('a'+i%26))+"@dest.test")
		}
		acc := submit(t, s, f, rcpts...)
		ids := make([]int64, len(acc))
		for i, a := range acc {
			ids[i] = a.QueuedID
		}
		var mu sync.Mutex
		seen := map[int64]int{}
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				owner := string(rune('A' + w))
				now := time.Now()
				var got []*store.QueuedMessage
				var err error
				if w%2 == 0 {
					got, err = s.ClaimQueued(ctx, ids, owner, now, now.Add(time.Minute))
				} else {
					got, err = s.ClaimQueuedForDomain(ctx, store.ScopeOutgoing, "dest.test", owner, now, now.Add(time.Minute), 50)
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, q := range got {
					seen[q.ID]++
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		if len(seen) != len(ids) {
			t.Fatalf("%d of %d rows claimed", len(seen), len(ids))
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("row %d claimed %d times", id, n)
			}
		}
	})
}

// ExtendLocks keeps the owner's rows locked past their first expiry and
// leaves rows of other owners alone.
func TestExtendLocks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := storetest.NewFixture(t, s, "example.com", "")
		acc := submit(t, s, f, "x@dest.test", "y@dest.test")
		now := time.Now()
		if got, err := s.ClaimQueued(ctx, []int64{acc[0].QueuedID}, "w1", now, now.Add(time.Second)); err != nil || len(got) != 1 {
			t.Fatalf("claim: %d, %v", len(got), err)
		}
		if got, err := s.ClaimQueued(ctx, []int64{acc[1].QueuedID}, "w2", now, now.Add(time.Second)); err != nil || len(got) != 1 {
			t.Fatalf("claim: %d, %v", len(got), err)
		}
		n, err := s.ExtendLocks(ctx, "w1", []int64{acc[0].QueuedID, acc[1].QueuedID}, now.Add(time.Minute))
		if err != nil || n != 1 {
			t.Fatalf("ExtendLocks = %d, %v; want only w1's row", n, err)
		}
		later := now.Add(30 * time.Second)
		due, err := s.DueQueued(ctx, later, 0, 10)
		if err != nil || len(due) != 1 || due[0].ID != acc[1].QueuedID {
			t.Fatalf("due at +30s = %+v, %v; want only w2's expired row", due, err)
		}
		if stolen, _ := s.ClaimQueued(ctx, []int64{acc[0].QueuedID}, "w3", later, later.Add(time.Second)); len(stolen) != 0 {
			t.Fatal("another worker took a row whose lock was extended")
		}
	})
}

// Claims commit without waiting for the disk (a lost claim is harmless),
// and every other commit stays durable: the relaxed setting never leaks
// into the pool, even when the claim fails.
func TestClaimsCommitLightlyAndNothingElseDoes(t *testing.T) {
	for _, b := range []struct {
		name            string
		opts            func(testing.TB) store.Options
		durable, relaxd string
	}{{"sqlite", storetest.SQLiteOptions, "2", "1"}, {"postgres", storetest.PostgresOptions, "on", "off"}} {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			o := b.opts(t)
			o.MaxOpenConns = 1 // the claim's connection is the one checked after it
			s, err := store.Open(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Migrate(ctx, false); err != nil {
				t.Fatal(err)
			}
			durability := func() string {
				t.Helper()
				v, err := store.CommitDurabilityForTest(ctx, s.DBForTest(), s.Driver())
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			if got := durability(); got != b.durable {
				t.Fatalf("pool commits with %q, want %q", got, b.durable)
			}
			err = s.LightlyForTest(ctx, func(q interface {
				QueryRowContext(context.Context, string, ...any) *sql.Row
			}) error {
				v, err := store.CommitDurabilityForTest(ctx, q, s.Driver())
				if err == nil && v != b.relaxd {
					t.Errorf("inside lightly commits are %q, want %q", v, b.relaxd)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := durability(); got != b.durable {
				t.Fatalf("after lightly the pool commits with %q, want %q", got, b.durable)
			}
			// lightTx: relaxed inside, a real transaction (a failing fn
			// rolls its writes back), durable again afterwards.
			err = s.LightTxForTest(ctx, func(q interface {
				QueryRowContext(context.Context, string, ...any) *sql.Row
			}) error {
				v, err := store.CommitDurabilityForTest(ctx, q, s.Driver())
				if err == nil && v != b.relaxd {
					t.Errorf("inside lightTx commits are %q, want %q", v, b.relaxd)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := durability(); got != b.durable {
				t.Fatalf("after lightTx the pool commits with %q, want %q", got, b.durable)
			}
			boom := errors.New("boom")
			err = s.LightTxForTest(ctx, func(q interface {
				QueryRowContext(context.Context, string, ...any) *sql.Row
			}) error {
				var n int
				if err := q.QueryRowContext(ctx, "INSERT INTO organizations (uuid, name, permalink, time_zone, created_at, updated_at) VALUES ('lt', 'lt', 'lt', 'UTC', 0, 0) RETURNING 1").Scan(&n); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("lightTx error = %v, want boom", err)
			}
			var orgs int
			if err := s.DBForTest().QueryRowContext(ctx, "SELECT count(*) FROM organizations WHERE uuid = 'lt'").Scan(&orgs); err != nil || orgs != 0 {
				t.Fatalf("a failed lightTx left %d rows (%v)", orgs, err)
			}
			if got := durability(); got != b.durable {
				t.Fatalf("after a failed lightTx the pool commits with %q, want %q", got, b.durable)
			}
			f := storetest.NewFixture(t, s, "example.com", "")
			acc, err := s.InsertSubmissions(ctx, []store.Submission{{Raw: []byte("Subject: x\r\n\r\nx\r\n"), Messages: []store.NewMessage{{
				ServerID: f.Server.ID, Scope: store.ScopeOutgoing, RcptTo: "a@dest.test", MailFrom: "b@example.com", Queue: true, QueueDomain: "dest.test"}}}})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			got, err := s.ClaimQueued(ctx, []int64{acc[0][0].QueuedID}, "w1", now, now.Add(time.Minute))
			if err != nil || len(got) != 1 || got[0].LockedBy != "w1" {
				t.Fatalf("claim = %+v, %v", got, err)
			}
			if got := durability(); got != b.durable {
				t.Fatalf("after a claim the pool commits with %q, want %q", got, b.durable)
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, err := s.ClaimQueued(cctx, []int64{acc[0][0].QueuedID}, "w2", now, now.Add(time.Minute)); err == nil {
				t.Fatal("claim with an ended context succeeded")
			}
			if got := durability(); got != b.durable {
				t.Fatalf("after a failed claim the pool commits with %q, want %q", got, b.durable)
			}
		})
	}
}

// A group commit of several submissions, each with its own body and
// recipients (some not queued), maps every accepted message to its own
// recipient, body and queued row, with more rows than one multi-row
// statement takes.
func TestInsertSubmissionsMapsEveryRowToItsSubmission(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		f := storetest.NewFixture(t, s, "example.com", "")
		var subs []store.Submission
		for i := range 150 {
			sub := store.Submission{Raw: []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))}
			for j := range i%3 + 1 {
				sub.Messages = append(sub.Messages, store.NewMessage{ServerID: f.Server.ID, Scope: store.ScopeOutgoing,
					RcptTo: fmt.Sprintf("r%d-%d@dest.test", i, j), MailFrom: "a@example.com", Queue: j != 1, QueueDomain: "Dest.test"})
			}
			subs = append(subs, sub)
		}
		acc, err := s.InsertSubmissions(ctx, subs)
		if err != nil {
			t.Fatal(err)
		}
		var qids []int64
		want := map[int64]int64{}
		for i, sub := range subs {
			if len(acc[i]) != len(sub.Messages) {
				t.Fatalf("submission %d: %d accepted, want %d", i, len(acc[i]), len(sub.Messages))
			}
			for j, a := range acc[i] {
				m, err := s.Message(ctx, a.MessageID)
				if err != nil || m.RcptTo != sub.Messages[j].RcptTo || a.RcptTo != m.RcptTo || a.Token != m.Token {
					t.Fatalf("submission %d message %d: %+v (%v), accepted %+v", i, j, m, err, a)
				}
				raw, err := s.RawMessage(ctx, m.RawMessageID)
				if err != nil || string(raw) != string(sub.Raw) || m.Size != int64(len(sub.Raw)) {
					t.Fatalf("submission %d message %d: body %q (%v), want %q", i, j, raw, err, sub.Raw)
				}
				if (a.QueuedID != 0) != sub.Messages[j].Queue {
					t.Fatalf("submission %d message %d: queued id %d, queue %v", i, j, a.QueuedID, sub.Messages[j].Queue)
				}
				if a.QueuedID != 0 {
					qids = append(qids, a.QueuedID)
					want[a.QueuedID] = a.MessageID
				}
			}
		}
		rows, err := s.QueuedByIDs(ctx, qids)
		if err != nil || len(rows) != len(qids) {
			t.Fatalf("queued rows %d, %v; want %d", len(rows), err, len(qids))
		}
		for _, r := range rows {
			if want[r.ID] != r.MessageID || r.Domain != "dest.test" {
				t.Fatalf("queued row %+v, want message %d", r, want[r.ID])
			}
		}
	})
}
